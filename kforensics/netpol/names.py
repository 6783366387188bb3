"""Kubernetes names and labels: upstream's checks, worded as the API server words them, and
valid names made from attacker-controlled text."""

from __future__ import annotations

import base64
import hashlib
import re

# --- content checks (apimachinery util/validation and api/validate/content) -----------------

_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = _DNS_LABEL + r"(\." + _DNS_LABEL + ")*"
_LABEL_KEY = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = "(" + _LABEL_KEY + ")?"
_ENDS = "and must start and end with an alphanumeric character"
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    f"'.', {_ENDS}"
)
_LABEL_MSG = (
    f"a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', {_ENDS}"
)
_KEY_MSG = f"must consist of alphanumeric characters, '-', '_' or '.', {_ENDS}"
_VALUE_MSG = "a valid label must be an empty string or " + _KEY_MSG[5:]
_PORT_CHARS_MSG = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"


def utf8_len(text: str) -> int:
    """Return the UTF-8 length of text, which is what Go's len() and upstream's limits count."""
    return len(text.encode("utf-8", "surrogatepass"))


def _regex_error(msg: str, regex: str, *examples: str) -> str:
    """Return upstream's RegexError message, its double spaces included."""
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{regex}')"


def _pattern(value: str, regex: str, limit: int, unit: str, msg: str, *examples: str) -> list[str]:
    """Return the length and format messages of one of upstream's Is* checks."""
    errs = [f"must be no more than {limit} {unit}"] if utf8_len(value) > limit else []
    return errs if re.fullmatch(regex, value) else [*errs, _regex_error(msg, regex, *examples)]


def dns1123_subdomain_errors(value: str, unit: str = "characters") -> list[str]:
    """Return IsDNS1123Subdomain's messages."""
    return _pattern(value, _DNS_SUBDOMAIN, 253, unit, _SUBDOMAIN_MSG, "example.com")


def dns1123_label_errors(value: str) -> list[str]:
    """Return IsDNS1123Label's messages."""
    errs = _pattern(value, _DNS_LABEL, 63, "characters", _LABEL_MSG, "my-name", "123-abc")
    if not re.fullmatch(_DNS_LABEL, value) and re.fullmatch(_DNS_SUBDOMAIN, value):
        errs[-1] = "must not contain dots"  # the format error, replaced as upstream does
    return errs


def label_key_errors(value: str) -> list[str]:
    """Return IsLabelKey's (formerly IsQualifiedName's) messages."""
    parts, examples = value.split("/"), ("MyName", "my.name", "123-abc")
    if len(parts) > 2:
        shape = _regex_error(_KEY_MSG, _LABEL_KEY, *examples)
        tail = "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        return [f"a valid label key {shape} {tail}"]
    name_errs = _pattern(parts[-1], _LABEL_KEY, 63, "bytes", _KEY_MSG, *examples)
    errs = []
    if len(parts) == 2:
        prefix_errs = (
            dns1123_subdomain_errors(parts[0], "bytes") if parts[0] else ["must be non-empty"]
        )
        errs += ["prefix part " + m for m in prefix_errs]
    if not parts[-1]:  # upstream reports emptiness instead of length, then the regex failure
        name_errs.insert(0, "must be non-empty")
    return errs + ["name part " + m for m in name_errs]


def label_value_errors(value: str) -> list[str]:
    """Return IsLabelValue's messages."""
    return _pattern(value, _LABEL_VALUE, 63, "bytes", _VALUE_MSG, "MyValue", "my_value", "12345")


def port_name_errors(port: str) -> list[str]:
    """Return IsValidPortName's (IANA_SVC_NAME) messages."""
    checks = (
        (utf8_len(port) > 15, "must be no more than 15 characters"),
        (not re.fullmatch("[-a-z0-9]+", port), _PORT_CHARS_MSG),
        (not re.search("[a-z]", port), "must contain at least one letter (a-z)"),
        ("--" in port, "must not contain consecutive hyphens"),
        (port[:1] == "-" or port[-1:] == "-", "must not begin or end with a hyphen"),
    )
    return [msg for failed, msg in checks if failed]


def path_segment_errors(name: str) -> list[str]:
    """Return IsValidPathSegmentName's messages (the name rule of RBAC objects)."""
    errs = [f"may not be '{name}'"] if name in (".", "..") else []
    return errs + [f"may not contain '{c}'" for c in "/%" if c in name]


_GO_ESCAPES = dict(zip('\a\b\f\n\r\t\v"\\', r"\a \b \f \n \r \t \v \" \\".split(), strict=True))


def go_quote(text: str) -> str:
    """Return text quoted as Go's %q prints it, as the API server's messages show values."""
    out = []
    for ch in text:
        ch = "\ufffd" if 0xD800 <= ord(ch) <= 0xDFFF else ch  # Go's JSON decoder does this
        code = ord(ch)
        if ch in _GO_ESCAPES or ch.isprintable():
            out.append(_GO_ESCAPES.get(ch, ch))
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


# --- valid names from attacker-controlled text ----------------------------------------------
# Sanitizing collapses runs of '-', so a kept name never contains "--", while every rewritten
# name has "--" before its digest: a rewritten name can never equal a name that was kept.

_SEP, _DIGEST_LEN = "--", 10


def _with_digest(raw: str, body: str, max_len: int, limit: int, trailing: str) -> str:
    """Return body cut to fit max_len, then "--" and a 50-bit base32 SHA-256 digest of raw."""
    if not len(_SEP) + _DIGEST_LEN < max_len <= limit:  # room for at least one body character
        raise ValueError(f"max_len must be between {len(_SEP) + _DIGEST_LEN + 1} and {limit}")
    digest = hashlib.sha256(raw.encode("utf-8", "surrogatepass")).digest()
    tag = base64.b32encode(digest).decode("ascii")[:_DIGEST_LEN].lower()
    return (body[: max_len - len(_SEP) - _DIGEST_LEN].rstrip(trailing) or "x") + _SEP + tag


def _dashed(text: str, invalid: str) -> str:
    """Return text with `invalid` characters turned to '-', runs collapsed and ends trimmed."""
    return re.sub("-+", "-", re.sub(invalid, "-", text)).strip("-")


def dns1123_label(text: str, *, prefix: str = "", max_len: int = 63) -> str:
    """Return prefix+text if it is a valid DNS-1123 label, else a sanitized label plus digest."""
    raw, body = prefix + text, _dashed((prefix + text).lower(), "[^a-z0-9]")
    digested = _with_digest(raw, body, max_len, 63, "-")  # also checks max_len, always
    return raw if body == raw and 0 < len(raw) <= max_len else digested


def dns1123_subdomain(text: str, *, prefix: str = "", max_len: int = 253) -> str:
    """Return prefix+text if it is a valid DNS-1123 subdomain, else a sanitized one plus digest."""
    raw = prefix + text
    body = ".".join(filter(None, (_dashed(p, "[^a-z0-9]") for p in raw.lower().split("."))))
    digested = _with_digest(raw, body, max_len, 253, ".-")  # also checks max_len, always
    return raw if body == raw and 0 < len(raw) <= max_len else digested


def label_value(text: str) -> str:
    """Return text if it is a valid label value (empty is), else a sanitized value plus digest."""
    body = re.sub("^[-_.]+|[-_.]+$", "", _dashed(text, "[^A-Za-z0-9._-]"))
    return text if body == text and len(text) <= 63 else _with_digest(text, body, 63, 63, "-_.")


def is_dns1123_label(text: str) -> bool:
    """Return whether text is already a valid DNS-1123 label (a namespace name)."""
    return isinstance(text, str) and bool(text) and not dns1123_label_errors(text)


def is_dns1123_subdomain(text: str) -> bool:
    """Return whether text is already a valid DNS-1123 subdomain (most object names)."""
    return isinstance(text, str) and bool(text) and not dns1123_subdomain_errors(text)


def is_label_key(key: str) -> bool:
    """Return whether key is a valid label key."""
    return isinstance(key, str) and not label_key_errors(key)


def is_label(key: str, value: str) -> bool:
    """Return whether key: value is a valid label (so it can go into a selector as it is)."""
    return (
        isinstance(key, str)
        and isinstance(value, str)
        and not (label_key_errors(key) or label_value_errors(value))
    )
