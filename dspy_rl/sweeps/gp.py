"""A small exact Gaussian process in torch: ARD Matern-5/2 or RBF kernel, hyperparameters by marginal likelihood.

Inputs live in the unit cube (see :mod:`dspy_rl.sweeps.spaces`); targets are standardized internally. The
hyperparameters (per-dimension lengthscales, signal variance, noise variance) are fitted by maximizing the log
marginal likelihood plus weak log-normal priors (MAP), with L-BFGS warm-started from the previous fit, so refitting
after one new observation costs a few milliseconds at sweep sizes (n <= a few hundred, d <= ~20).

:meth:`ExactGP.condition` reuses the fitted hyperparameters on a different data set; the searchers use it to add
"fantasy" observations for pending trials (kriging believer) without refitting.

With ``fidelity_dim`` (the input that is a trial's budget, in multi-fidelity sweeps) the kernel is
``k_x(x, x') * (b + (1 - b) * k_z(z, z'))``: a fitted share ``b`` of the signal is common to every budget and the
rest varies along the budget axis with its own lengthscale. A plain ARD kernel learns a short budget lengthscale as
soon as one configuration's score moves a lot between budgets (learning curves that rise, plateau and collapse), and
then a cheap trial says nothing about the same configuration at a large budget: a searcher that values the large
budget keeps paying for cheap trials that cannot change its mind. With the shared part, a configuration that is
hopeless at 8k env steps is predicted poor at 512k too, as far as the data say budgets agree.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)

KERNELS = ("matern52", "rbf")
_DTYPE = torch.float64


@dataclass
class GPHyper:
    """Unconstrained (log-space) GP hyperparameters; kept so a restored searcher resumes from the same fit."""

    log_lengthscale: list[float]
    log_signal: float
    log_noise: float
    #: only with a fidelity input: logit of the share of the signal that every budget has in common
    logit_bias: float | None = None


def _kernel(
    kind: str,
    a: torch.Tensor,
    b: torch.Tensor,
    lengthscale: torch.Tensor,
    signal: torch.Tensor,
    fidelity_dim: int | None = None,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    diff = (a[:, None, :] - b[None, :, :]) / lengthscale
    sq = diff * diff
    if fidelity_dim is None:
        return signal * _stationary(kind, sq.sum(-1))
    # k_x(x, x') * (bias + (1 - bias) * k_z(z, z')): every budget shares the ``bias`` part of the signal
    d2_z = sq[..., fidelity_dim]
    d2_x = sq.sum(-1) - d2_z
    return signal * _stationary(kind, d2_x) * (bias + (1.0 - bias) * _stationary(kind, d2_z))


def _stationary(kind: str, d2: torch.Tensor) -> torch.Tensor:
    if kind == "rbf":
        return torch.exp(-0.5 * d2)
    r = torch.sqrt(d2 + 1e-12)
    s5 = math.sqrt(5.0)
    return (1.0 + s5 * r + (5.0 / 3.0) * d2) * torch.exp(-s5 * r)


class ExactGP:
    """Exact GP regression with a constant mean (the standardized targets' mean, i.e. zero).

    ``fidelity_dim``: index of the budget input, which then gets the shared-plus-budget kernel described above.
    """

    def __init__(
        self,
        kernel: str = "matern52",
        min_noise: float = 1e-6,
        fit_iters: int = 25,
        lengthscale_prior: tuple[float, float] = (math.log(0.3), 1.0),
        noise_prior: tuple[float, float] = (math.log(1e-2), 2.0),
        fidelity_dim: int | None = None,
    ):
        if kernel not in KERNELS:
            raise ValueError(f"kernel={kernel!r}; choose one of {KERNELS}")
        if fit_iters < 1:
            raise ValueError(f"fit_iters={fit_iters} must be >= 1")
        self.kernel = kernel
        self.min_noise = float(min_noise)
        self.fit_iters = int(fit_iters)
        self.lengthscale_prior = lengthscale_prior
        self.noise_prior = noise_prior
        self.fidelity_dim = fidelity_dim
        self.hyper: GPHyper | None = None
        self._x: torch.Tensor | None = None
        self._alpha: torch.Tensor | None = None
        self._chol: torch.Tensor | None = None
        self._y_mean = 0.0
        self._y_std = 1.0

    # ----------------------------------------------------------------------------------------------- fitting
    def _unpack(
        self, theta: torch.Tensor, dim: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        lengthscale = torch.exp(theta[:dim])
        signal = torch.exp(theta[dim])
        noise = torch.exp(theta[dim + 1]) + self.min_noise
        bias = torch.sigmoid(theta[dim + 2]) if self.fidelity_dim is not None else None
        return lengthscale, signal, noise, bias

    def _k(self, a: torch.Tensor, b: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        lengthscale, signal, _, bias = self._unpack(theta, a.shape[1])
        return _kernel(self.kernel, a, b, lengthscale, signal, self.fidelity_dim, bias)

    def _theta(self) -> torch.Tensor:
        assert self.hyper is not None
        h = self.hyper
        extra = [h.logit_bias if h.logit_bias is not None else 0.0] if self.fidelity_dim is not None else []
        return torch.tensor([*h.log_lengthscale, h.log_signal, h.log_noise, *extra], dtype=_DTYPE)

    def _neg_log_posterior(self, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, dim = x.shape
        noise = self._unpack(theta, dim)[2]
        k = self._k(x, x, theta) + noise * torch.eye(n, dtype=_DTYPE)
        chol, info = torch.linalg.cholesky_ex(k)
        if int(info) != 0:
            return torch.tensor(float("inf"), dtype=_DTYPE)
        alpha = torch.cholesky_solve(y[:, None], chol)[:, 0]
        nll = (
            0.5 * (y * alpha).sum() + torch.log(torch.diagonal(chol)).sum() + 0.5 * n * math.log(2 * math.pi)
        )
        mu_l, sd_l = self.lengthscale_prior
        mu_n, sd_n = self.noise_prior
        prior = 0.5 * (((theta[:dim] - mu_l) / sd_l) ** 2).sum()
        prior = prior + 0.5 * ((theta[dim + 1] - mu_n) / sd_n) ** 2 + 0.5 * (theta[dim] / 2.0) ** 2
        if self.fidelity_dim is not None:  # logit of the shared share: centered on 1/2, weakly
            prior = prior + 0.5 * (theta[dim + 2] / 1.5) ** 2
        return nll + prior

    def fit(self, x: torch.Tensor, y: torch.Tensor, refit: bool = True) -> ExactGP:
        """Fit hyperparameters (unless ``refit`` is False and a fit exists) and condition on ``(x, y)``."""
        x = torch.as_tensor(x, dtype=_DTYPE)
        y = torch.as_tensor(y, dtype=_DTYPE).reshape(-1)
        if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(
                f"fit needs x (n, d) and y (n,) with n >= 1; got x {tuple(x.shape)}, y {tuple(y.shape)}"
            )
        if not torch.isfinite(y).all() or not torch.isfinite(x).all():
            raise ValueError("fit got non-finite inputs or targets; drop failed observations before fitting")
        dim = x.shape[1]
        y_mean = float(y.mean())
        y_std = float(y.std()) if y.shape[0] > 1 else 1.0
        y_std = y_std if y_std > 1e-12 else 1.0
        ys = (y - y_mean) / y_std
        if self.fidelity_dim is not None and not 0 <= self.fidelity_dim < dim:
            raise ValueError(
                f"fidelity_dim={self.fidelity_dim} is not an input index (inputs have {dim} dims)"
            )
        if self.hyper is None or len(self.hyper.log_lengthscale) != dim:
            extra = [0.0] if self.fidelity_dim is not None else []
            theta = torch.tensor(
                [self.lengthscale_prior[0]] * dim + [0.0, self.noise_prior[0], *extra], dtype=_DTYPE
            )
        else:
            theta = self._theta()
        theta.requires_grad_(True)
        if refit or self.hyper is None:
            # Intra-op threads only add contention at these matrix sizes (n <= a few hundred).
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                theta = self._optimize(theta, x, ys)
            finally:
                torch.set_num_threads(threads)
        t = theta.detach()
        self.hyper = GPHyper(
            log_lengthscale=[float(v) for v in t[:dim]],
            log_signal=float(t[dim]),
            log_noise=float(t[dim + 1]),
            logit_bias=float(t[dim + 2]) if self.fidelity_dim is not None else None,
        )
        self._y_mean, self._y_std = y_mean, y_std
        self._condition_standardized(x, ys)
        return self

    def _optimize(self, theta: torch.Tensor, x: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        best = theta.detach().clone()
        with torch.no_grad():
            best_val = float(self._neg_log_posterior(best, x, ys))
        # A warm start (previous fit, one more observation) needs few iterations; a cold start gets the full budget.
        iters = self.fit_iters if self.hyper is None else max(5, self.fit_iters // 3)
        opt = torch.optim.LBFGS([theta], lr=0.5, max_iter=iters, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = self._neg_log_posterior(theta, x, ys)
            if torch.isfinite(loss):
                loss.backward()
            return loss

        try:
            opt.step(closure)
        except RuntimeError as exc:  # a line search that hits a non-PD kernel; keep the last good values
            logger.debug("GP hyperparameter fit stopped early: %s", exc)
        with torch.no_grad():
            theta.clamp_(-12.0, 8.0)
            val = float(self._neg_log_posterior(theta, x, ys))
        if math.isfinite(val) and val <= best_val:
            return theta.detach()
        return best

    # --------------------------------------------------------------------------------------------- prediction
    def _condition_standardized(self, x: torch.Tensor, ys: torch.Tensor) -> None:
        assert self.hyper is not None
        dim = x.shape[1]
        theta = self._theta()
        noise = self._unpack(theta, dim)[2]
        k = self._k(x, x, theta) + noise * torch.eye(x.shape[0], dtype=_DTYPE)
        jitter = 1e-8
        while True:
            chol, info = torch.linalg.cholesky_ex(k + jitter * torch.eye(x.shape[0], dtype=_DTYPE))
            if int(info) == 0:
                break
            jitter *= 10.0
            if jitter > 1.0:
                raise RuntimeError("GP kernel matrix is not positive definite even with jitter 1.0")
        self._x, self._chol = x, chol
        self._alpha = torch.cholesky_solve(ys[:, None], chol)[:, 0]
        self._theta_now = theta

    def condition(self, x: torch.Tensor, y: torch.Tensor) -> ExactGP:
        """Condition on new data with the current hyperparameters and target scaling (no refit)."""
        if self.hyper is None:
            raise RuntimeError("condition() needs a fitted GP; call fit() first")
        x = torch.as_tensor(x, dtype=_DTYPE)
        ys = (torch.as_tensor(y, dtype=_DTYPE).reshape(-1) - self._y_mean) / self._y_std
        self._condition_standardized(x, ys)
        return self

    @torch.no_grad()
    def predict(self, xq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation (of the latent function) at ``xq`` (m, d), in target units."""
        if self._x is None or self._chol is None or self._alpha is None:
            raise RuntimeError("predict() needs a fitted GP; call fit() first")
        xq = torch.as_tensor(xq, dtype=_DTYPE)
        dim = self._x.shape[1]
        signal = self._unpack(self._theta_now, dim)[1]
        kq = self._k(xq, self._x, self._theta_now)
        mean = kq @ self._alpha
        v = torch.linalg.solve_triangular(self._chol, kq.T, upper=False)
        var = (signal - (v * v).sum(0)).clamp_min(1e-12)
        return mean * self._y_std + self._y_mean, var.sqrt() * self._y_std

    @property
    def prior_std(self) -> float:
        """Prior standard deviation of the latent function in target units (the posterior std far from data)."""
        if self.hyper is None:
            raise RuntimeError("prior_std needs a fitted GP; call fit() first")
        return math.exp(0.5 * self.hyper.log_signal) * self._y_std

    @property
    def train_x(self) -> torch.Tensor | None:
        return self._x
