"""Redaction of secret material before anything from a request or response is displayed.

`redact(value)` returns a deep copy of JSON-like data (dicts, lists, scalars, or a JSON string)
with Secret data, tokens, keys, passwords, bearer headers, kubeconfigs and JWT-looking strings
replaced by "[REDACTED]"; `redact_text(text)` does the same for free text. Both are meant to
over-redact: a false positive costs a look at the raw case, a false negative leaks a credential.
"""

from __future__ import annotations

import json
import re
from typing import Any

from kforensics import untrusted
from kforensics.untrusted import TOO_DEEP

REDACTED = "[REDACTED]"

# Keys whose values are secret material wherever they appear (compared case-insensitively,
# with '-' and '_' ignored).
_SECRET_KEYS = {
    "token",
    "accesstoken",
    "idtoken",
    "refreshtoken",
    "bearertoken",
    "clientkeydata",
    "clientcertificatedata",
    "password",
    "passwd",
    "clientsecret",
    "privatekey",
    "apikey",
    "authorization",
    "proxyauthorization",
    "kubeconfig",
}
_SECRET_DATA_KEYS = ("data", "stringData", "binaryData")

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_KEY_VALUE = re.compile(
    r"(?i)((?:client-key-data|client-certificate-data|certificate-authority-data|token|"
    r"access_token|id_token|refresh_token|password|passwd|bearerToken|client_secret)"
    r"[\"']?\s*[:=]\s*[\"']?)"
    # A value redacted already (Markdown-escaped or not) stays as it is; closing marks that end
    # the value end the sentence around it, and stay.
    r"(?!\\?\[REDACTED\\?\][)\]>|`.]*(?:[\s\"',&;}]|$))([^\s\"',&;}]+?)(?=[)\]>|`.]*(?:[\s\"',&;}]|$))"
)
# A block cut short (a clipped field, a truncated line) is still a key: it runs to the end.
_PEM = re.compile(r"-----BEGIN [A-Z0-9 ]*(?:-----.*?(?:-----END [A-Z0-9 ]*-----|\Z)|\Z)", re.S)


def _norm(key: str) -> str:
    return key.replace("-", "").replace("_", "").lower()


def _looks_like_kubeconfig(obj: dict) -> bool:
    return obj.get("kind") == "Config" or ("clusters" in obj and "users" in obj)


def _secret_shaped(obj: dict) -> bool:
    kind = obj.get("kind")
    if kind == "Secret":
        return True
    if kind is None and "type" in obj and any(k in obj for k in _SECRET_DATA_KEYS):
        return isinstance(obj.get("type"), str) and (
            obj["type"].startswith("kubernetes.io/") or obj["type"] in ("Opaque", "")
        )
    return False


def _blank(value: Any) -> Any:
    """Replace every leaf of value with REDACTED, keeping the keys (what was there, not what)."""
    if isinstance(value, dict):
        return {k: _blank(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank(v) for v in value]
    return None if value is None else REDACTED


def redact_text(text: str) -> str:
    """Return text with JWTs, bearer/basic credentials, key=value secrets and PEM blocks hidden."""
    if not isinstance(text, str):
        return text
    if "apiVersion" in text and "clusters" in text and "users" in text and "Config" in text:
        return REDACTED  # a kubeconfig blob
    text = _PEM.sub(REDACTED, text)
    text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _KEY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)


def clip(text: str, limit: int = 64) -> str:
    """Return text redacted, then cut to limit characters (an ellipsis marks the cut)."""
    # Redact first: a cut can break a PEM block or a JWT into a shape the patterns miss.
    text = redact_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _walk(value: Any, parent_kind: str | None = None) -> Any:
    if isinstance(value, dict):
        if _looks_like_kubeconfig(value):
            return _blank(value)
        secret = _secret_shaped(value)
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                out[key] = _walk(item)
            elif secret and key in _SECRET_DATA_KEYS:
                out[key] = _blank(item)
            elif _norm(key) in _SECRET_KEYS and item is not None:
                out[key] = _blank(item) if isinstance(item, dict | list) else REDACTED
            elif value.get("kind") == "TokenRequest" and key == "status":
                out[key] = _blank(item)
            elif key == "items" and value.get("kind") == "SecretList" and isinstance(item, list):
                out[key] = [
                    _walk({"kind": "Secret", **i} if isinstance(i, dict) else i) for i in item
                ]
            else:
                out[key] = _walk(item)
        return out
    if isinstance(value, list):
        return [_walk(v) for v in value]
    if isinstance(value, str):
        if (
            value[:1] in "{[" and len(value) > 1
        ):  # JSON inside a string (last-applied-configuration)
            try:
                return json.dumps(_walk(untrusted.loads(value)), ensure_ascii=False)
            except untrusted.TooDeep:
                return TOO_DEEP  # too deep to check for secrets: a marker, never the text
            except ValueError:
                pass
        return redact_text(value)
    return value


def redact(value: Any) -> Any:
    """Return a deep copy of JSON-like data (or a JSON string) with secret material redacted."""
    if isinstance(value, str | bytes):
        try:
            parsed = untrusted.loads(value)
        except untrusted.TooDeep:
            return TOO_DEEP  # nothing is shown that could not be checked for secrets
        except ValueError:
            return redact_text(
                value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            )
        if isinstance(parsed, dict | list):
            return json.dumps(_walk(parsed), ensure_ascii=False)
        return redact_text(value if isinstance(value, str) else value.decode("utf-8", "replace"))
    return TOO_DEEP if untrusted.too_deep(value) else _walk(value)
