"""The OpenAI HTTP protocol pieces shared by ``serve lm`` and ``serve proxy``.

* :class:`OpenAIError` and :func:`error_response`: OpenAI-style error bodies
  (``{"error": {"message", "type", "param", "code"}}``) so the real ``openai`` client raises its typed errors;
* :func:`read_json_body`: refuses bodies over a size limit (413) and non-JSON bodies (400);
* :class:`BearerAuth`: optional ``Authorization: Bearer`` check (only the token's SHA-256 is kept);
* :func:`parse_chat_request` / :func:`parse_completion_request`: validated requests whose errors name the field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

ROLES = ("system", "user", "assistant", "tool", "developer", "function")


class OpenAIError(Exception):
    """An error to send back as an OpenAI-style JSON body with an HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, type_: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.type = type_ or {
            400: "invalid_request_error",
            401: "authentication_error",
            404: "not_found_error",
            413: "invalid_request_error",
        }.get(status, "server_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": None}}


def error_response(exc: OpenAIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def read_json_body(request: Request, max_bytes: int) -> Any:
    """The request's JSON body; 413 over ``max_bytes`` (checked on Content-Length and the bytes read), else 400."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise OpenAIError(413, f"request body of {declared} bytes; the limit is {max_bytes} (max_body_bytes)")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > max_bytes:
            raise OpenAIError(413, f"request body over {max_bytes} bytes (max_body_bytes)")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise OpenAIError(400, f"body is not valid JSON: {exc}") from exc


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class BearerAuth:
    """Checks ``Authorization: Bearer <token>`` against a SHA-256 (no check when ``sha256`` is None)."""

    def __init__(self, sha256: str | None) -> None:
        self.sha256 = sha256

    def check(self, request: Request) -> None:
        if self.sha256 is None:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token_sha256(token.strip()), self.sha256):
            raise OpenAIError(401, "missing or wrong bearer token (send Authorization: Bearer <token>)")


@dataclass
class SamplingRequest:
    """What both endpoints share once validated."""

    model: str
    max_tokens: int
    temperature: float
    top_p: float
    n: int
    stream: bool
    stop: list[str]
    logprobs: bool
    top_logprobs: int
    seed: int | None
    include_usage: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChatRequest(SamplingRequest):
    messages: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class CompletionRequest(SamplingRequest):
    prompt: str = ""
    echo: bool = False


def _bad(param: str, message: str) -> OpenAIError:
    return OpenAIError(400, f"'{param}': {message}", param=param)


def _number(body: dict, key: str, default: float, lo: float, hi: float) -> float:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _bad(key, f"expected a number, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise _bad(key, f"{v} is out of range [{lo}, {hi}]")
    return float(v)


def _int(body: dict, key: str, default: int | None, lo: int, hi: int) -> int | None:
    v = body.get(key, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise _bad(key, f"expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise _bad(key, f"{v} is out of range [{lo}, {hi}]")
    return v


def _bool(body: dict, key: str, default: bool) -> bool:
    v = body.get(key, default)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise _bad(key, f"expected true or false, got {type(v).__name__}")
    return v


def _common(body: Any, max_tokens_limit: int, default_max_tokens: int) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise OpenAIError(400, f"body must be a JSON object, got {type(body).__name__}")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "required: a non-empty string (GET /v1/models lists them)")
    stop = body.get("stop")
    if stop is None:
        stops: list[str] = []
    elif isinstance(stop, str):
        stops = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop) and len(stop) <= 4:
        stops = list(stop)
    else:
        raise _bad("stop", "expected a string or a list of at most 4 strings")
    stops = [s for s in stops if s]
    so = body.get("stream_options")
    if so is not None and not isinstance(so, dict):
        raise _bad("stream_options", "expected an object")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    key = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    return {
        "model": model,
        "max_tokens": _int({key: max_tokens}, key, default_max_tokens, 1, max_tokens_limit),
        "temperature": _number(body, "temperature", 1.0, 0.0, 2.0),
        "top_p": _number(body, "top_p", 1.0, 0.0, 1.0) or 1.0,
        "n": _int(body, "n", 1, 1, 8),
        "stream": _bool(body, "stream", False),
        "stop": stops,
        "seed": _int(body, "seed", None, -(2**63), 2**63 - 1),
        "include_usage": bool((so or {}).get("include_usage", False)),
    }


def parse_chat_request(body: Any, max_tokens_limit: int, default_max_tokens: int) -> ChatRequest:
    """Validate a ``POST /v1/chat/completions`` body (errors name the field)."""
    common = _common(body, max_tokens_limit, default_max_tokens)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "required: a non-empty list of {role, content} objects")
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise _bad(f"messages[{i}]", "expected an object with 'role' and 'content'")
        if m.get("role") not in ROLES:
            raise _bad(f"messages[{i}].role", f"{m.get('role')!r} is not one of {list(ROLES)}")
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _bad(f"messages[{i}].content", "expected a string or a list of content parts")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if (
                    not isinstance(part, dict)
                    or part.get("type") != "text"
                    or not isinstance(part.get("text"), str)
                ):
                    raise _bad(
                        f"messages[{i}].content[{j}]",
                        "only {'type': 'text', 'text': str} parts are supported",
                    )
    logprobs = _bool(body, "logprobs", False)
    top = _int(body, "top_logprobs", 0, 0, 20)
    if top and not logprobs:
        raise _bad("top_logprobs", "requires logprobs=true")
    return ChatRequest(**common, logprobs=logprobs, top_logprobs=top or 0, messages=messages)


def parse_completion_request(body: Any, max_tokens_limit: int, default_max_tokens: int) -> CompletionRequest:
    """Validate a ``POST /v1/completions`` body (a single string prompt; ``logprobs`` is an int there)."""
    common = _common(body, max_tokens_limit, 16)
    if body.get("max_tokens") is None:
        common["max_tokens"] = min(16, max_tokens_limit)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("prompt", "required: a string (or a list of one string)")
    lp = body.get("logprobs")
    if lp is None or lp is False:
        logprobs, top = False, 0
    elif lp is True:
        logprobs, top = True, 0
    else:
        top = _int(body, "logprobs", 0, 0, 5)
        logprobs = True
    return CompletionRequest(
        **common, logprobs=logprobs, top_logprobs=top, prompt=prompt, echo=_bool(body, "echo", False)
    )


def message_text(message: dict[str, Any]) -> str:
    """A message's content as plain text (text parts joined)."""
    content = message.get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)
