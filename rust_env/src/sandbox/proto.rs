//! Wire format between the host process and a sandbox's init (one SOCK_SEQPACKET message each way).
//!
//! Request (host -> init), with three fds attached by SCM_RIGHTS (stdin read end, stdout and stderr write
//! ends): `timeout_ms cpu_s as_bytes nproc fsize nofile` as little-endian u64, then argv and env as
//! `u32 count` + (`u32 len` + bytes) each. Reply (init -> host): `b'X' kind:u8 code:i32 timed_out:u8`, with
//! kind 0 = exited with code, 1 = killed by signal code; or `b'F' message` when the command could not start.
//! At start the init sends `b'R' landlock_abi:u32` (ready) or `b'E' message` (setup failed).

use libc::c_int;
use std::mem::size_of;

/// Largest request (argv + env) accepted, in bytes.
pub const MAX_REQUEST: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub timeout_ms: u64,
    pub cpu_s: u64,
    pub as_bytes: u64,
    pub nproc: u64,
    pub fsize: u64,
    pub nofile: u64,
    pub argv: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
}

fn put_list(out: &mut Vec<u8>, items: &[Vec<u8>]) {
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for it in items {
        out.extend_from_slice(&(it.len() as u32).to_le_bytes());
        out.extend_from_slice(it);
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        for v in [
            self.timeout_ms,
            self.cpu_s,
            self.as_bytes,
            self.nproc,
            self.fsize,
            self.nofile,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        put_list(&mut out, &self.argv);
        put_list(&mut out, &self.env);
        out
    }

    pub fn decode(buf: &[u8]) -> Option<Request> {
        let mut pos = 0usize;
        let u64_ = |pos: &mut usize| -> Option<u64> {
            let b = buf.get(*pos..*pos + 8)?;
            *pos += 8;
            Some(u64::from_le_bytes(b.try_into().ok()?))
        };
        let nums = [
            u64_(&mut pos)?,
            u64_(&mut pos)?,
            u64_(&mut pos)?,
            u64_(&mut pos)?,
            u64_(&mut pos)?,
            u64_(&mut pos)?,
        ];
        let list = |pos: &mut usize| -> Option<Vec<Vec<u8>>> {
            let n = u32::from_le_bytes(buf.get(*pos..*pos + 4)?.try_into().ok()?) as usize;
            *pos += 4;
            let mut items = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                let len = u32::from_le_bytes(buf.get(*pos..*pos + 4)?.try_into().ok()?) as usize;
                *pos += 4;
                items.push(buf.get(*pos..*pos + len)?.to_vec());
                *pos += len;
            }
            Some(items)
        };
        let argv = list(&mut pos)?;
        let env = list(&mut pos)?;
        if pos != buf.len() {
            return None;
        }
        Some(Request {
            timeout_ms: nums[0],
            cpu_s: nums[1],
            as_bytes: nums[2],
            nproc: nums[3],
            fsize: nums[4],
            nofile: nums[5],
            argv,
            env,
        })
    }
}

/// Send one message with `fds` attached (SCM_RIGHTS). Returns false on error.
pub fn send_with_fds(sock: c_int, data: &[u8], fds: &[c_int]) -> bool {
    unsafe {
        let mut iov = libc::iovec {
            iov_base: data.as_ptr() as *mut libc::c_void,
            iov_len: data.len(),
        };
        let space = libc::CMSG_SPACE(std::mem::size_of_val(fds) as u32) as usize;
        let mut cbuf = vec![0u8; space.max(1)];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        if !fds.is_empty() {
            msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
            msg.msg_controllen = space as _;
            let cm = libc::CMSG_FIRSTHDR(&msg);
            (*cm).cmsg_level = libc::SOL_SOCKET;
            (*cm).cmsg_type = libc::SCM_RIGHTS;
            (*cm).cmsg_len = libc::CMSG_LEN(std::mem::size_of_val(fds) as u32) as _;
            std::ptr::copy_nonoverlapping(
                fds.as_ptr() as *const u8,
                libc::CMSG_DATA(cm),
                std::mem::size_of_val(fds),
            );
        }
        loop {
            let r = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
            if r >= 0 {
                return r as usize == data.len();
            }
            if *libc::__errno_location() != libc::EINTR {
                return false;
            }
        }
    }
}

/// Receive one message; returns (bytes, fds) or None on EOF/error. Received fds are close-on-exec.
pub fn recv_with_fds(sock: c_int, buf: &mut [u8]) -> Option<(usize, Vec<c_int>)> {
    unsafe {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        let space = libc::CMSG_SPACE(size_of::<[c_int; 8]>() as u32) as usize;
        let mut cbuf = vec![0u8; space];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space as _;
        let n = loop {
            let r = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
            if r >= 0 {
                break r as usize;
            }
            if *libc::__errno_location() != libc::EINTR {
                return None;
            }
        };
        let mut fds = Vec::new();
        let mut cm = libc::CMSG_FIRSTHDR(&msg);
        while !cm.is_null() {
            if (*cm).cmsg_level == libc::SOL_SOCKET && (*cm).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cm);
                let count =
                    ((*cm).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / size_of::<c_int>();
                for i in 0..count {
                    let mut fd: c_int = 0;
                    std::ptr::copy_nonoverlapping(
                        data.add(i * size_of::<c_int>()),
                        &mut fd as *mut c_int as *mut u8,
                        size_of::<c_int>(),
                    );
                    fds.push(fd);
                }
            }
            cm = libc::CMSG_NXTHDR(&msg, cm);
        }
        if n == 0 && fds.is_empty() {
            return None;
        }
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            for fd in &fds {
                libc::close(*fd);
            }
            return Some((0, Vec::new()));
        }
        Some((n, fds))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_roundtrip_and_rejects_garbage() {
        let r = Request {
            timeout_ms: 1500,
            cpu_s: 3,
            as_bytes: 1 << 30,
            nproc: 64,
            fsize: 1 << 20,
            nofile: 256,
            argv: vec![b"/bin/sh".to_vec(), b"-c".to_vec(), b"echo hi".to_vec()],
            env: vec![b"PATH=/usr/bin".to_vec()],
        };
        let enc = r.encode();
        assert_eq!(Request::decode(&enc), Some(r));
        assert_eq!(Request::decode(&enc[..enc.len() - 1]), None);
        let mut longer = enc.clone();
        longer.push(0);
        assert_eq!(Request::decode(&longer), None);
    }

    #[test]
    fn fds_travel_over_seqpacket() {
        let mut sv = [0 as c_int; 2];
        assert_eq!(
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0, sv.as_mut_ptr()) },
            0
        );
        let mut p = [0 as c_int; 2];
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        assert!(send_with_fds(sv[0], b"hello", &[p[1]]));
        let mut buf = [0u8; 64];
        let (n, fds) = recv_with_fds(sv[1], &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 1);
        unsafe {
            assert_eq!(
                libc::write(fds[0], b"x".as_ptr() as *const libc::c_void, 1),
                1
            );
            let mut c = [0u8; 1];
            assert_eq!(libc::read(p[0], c.as_mut_ptr() as *mut libc::c_void, 1), 1);
            assert_eq!(c[0], b'x');
            for fd in [sv[0], sv[1], p[0], p[1], fds[0]] {
                libc::close(fd);
            }
        }
    }
}
