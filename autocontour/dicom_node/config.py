"""The DICOM node's settings file (YAML): who owns what it receives, whom it accepts, which model
contours what, and where the contours go.

```yaml
owner: alice                      # a user of the store: received series become her cases
ae_title: AUTOCONTOUR             # --ae-title wins; default AUTOCONTOUR
port: 11112                       # --port wins; default 11112
host: 127.0.0.1                   # --host wins; 0.0.0.0 listens on every interface
calling_ae_titles: [CT_SIM, PACS] # who may send (others are rejected); ["*"]: anybody
quiet_seconds: 10                 # a series is complete after this long without a new instance
send_seg: false                   # also send the DICOM-SEG (default: the RTSTRUCT only)
destinations:                     # where contours go unless a rule names its own
  - {ae_title: TPS, host: 10.0.0.5, port: 104}
rules:                            # the first rule that matches chooses (regex, any case)
  - {body_part: "HEAD|NECK|BRAIN", model: head-neck}
  - series_description: "pelvis|prostate|cervix"
    model: pelvis
    destinations: [{ae_title: TPS2, host: 10.0.0.6, port: 104, tls: true}]
    send_seg: true
retry: {attempts: 5, first_delay_seconds: 10, factor: 2}
tls: {cert: node.pem, key: node.key, ca: ca.pem}   # --tls-cert/--tls-key/--tls-ca win
```

A series no rule matches is contoured by the model its CT chooses (as ``autocontour predict``
without ``--model``) and sent to the global destinations. A bad file is one
:class:`~autocontour.errors.InvalidInputError` naming the file and the problem.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autocontour.errors import InvalidInputError, did_you_mean

DEFAULT_AE_TITLE = "AUTOCONTOUR"
DEFAULT_PORT = 11112
ANY_CALLING_AE = "*"


def check_ae_title(title: str) -> str:
    """A DICOM AE title: 1-16 characters of printable ASCII, no backslash, not only spaces."""
    stripped = title.strip()
    if not stripped or len(title) > 16 or "\\" in title or not title.isprintable() \
            or not title.isascii():
        raise ValueError(f"AE title {title!r}: 1-16 printable ASCII characters, no backslash")
    return stripped


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Destination(_Strict):
    """A DICOM node the contours are C-STOREd to."""

    ae_title: str
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    tls: bool = False

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, title: str) -> str:
        return check_ae_title(title)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}{' (TLS)' if self.tls else ''}"


class Rule(_Strict):
    """Which model contours a series, and where its contours go: the first rule whose patterns
    all match (``re.search``, any case) wins; a rule without patterns matches every series."""

    body_part: str | None = Field(None, description="regex on BodyPartExamined")
    series_description: str | None = Field(None, description="regex on SeriesDescription")
    model: str | None = Field(None, description="a shipped model or a model file; None: the "
                                                "model the CT chooses")
    destinations: list[Destination] | None = None
    send_seg: bool | None = None

    @field_validator("body_part", "series_description")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
        return pattern

    def matches(self, body_part: str, description: str) -> bool:
        return all(pattern is None or re.search(pattern, value, re.IGNORECASE) is not None
                   for pattern, value in ((self.body_part, body_part),
                                          (self.series_description, description)))

    def describe(self, number: int) -> str:
        parts = [f"{name} ~ {pattern!r}" for name, pattern in
                 (("BodyPartExamined", self.body_part),
                  ("SeriesDescription", self.series_description)) if pattern is not None]
        return f"rule {number}" + (f" ({', '.join(parts)})" if parts else " (every series)")


class Retry(_Strict):
    """How often a send is tried, and how long to wait between tries (``first_delay_seconds``,
    then times ``factor`` each time)."""

    attempts: int = Field(5, ge=1, le=100)
    first_delay_seconds: float = Field(10.0, ge=0)
    factor: float = Field(2.0, ge=1)

    def delay(self, attempts_made: int) -> float:
        """Seconds to wait after the ``attempts_made``-th failed attempt."""
        return self.first_delay_seconds * self.factor ** max(attempts_made - 1, 0)


class Tls(_Strict):
    """TLS of the listener (and the client certificate of sends to ``tls: true`` destinations):
    the node's certificate and key (PEM); with ``ca``, callers must present a certificate that
    ``ca`` signed (mutual TLS), and destinations are verified against it."""

    cert: Path
    key: Path
    ca: Path | None = None


class NodeConfig(_Strict):
    """Everything the DICOM node is configured by (module docstring). ``source`` is the file it
    was read from (for messages)."""

    owner: str = Field(min_length=1, max_length=64)
    ae_title: str = DEFAULT_AE_TITLE
    host: str = "127.0.0.1"
    port: int = Field(DEFAULT_PORT, ge=0, le=65535)
    calling_ae_titles: list[str] = Field(min_length=1)
    quiet_seconds: float = Field(10.0, gt=0, le=3600)
    send_seg: bool = False
    destinations: list[Destination] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)
    retry: Retry = Field(default_factory=Retry)
    tls: Tls | None = None
    poll_seconds: float = Field(0.2, gt=0, le=60, description="how often the store is looked at")
    source: str = ""

    @field_validator("ae_title")
    @classmethod
    def _ae_title(cls, title: str) -> str:
        return check_ae_title(title)

    @field_validator("calling_ae_titles")
    @classmethod
    def _callers(cls, titles: list[str]) -> list[str]:
        return [t if t == ANY_CALLING_AE else check_ae_title(t) for t in titles]

    @property
    def any_caller(self) -> bool:
        return ANY_CALLING_AE in self.calling_ae_titles

    def route(self, body_part: str, description: str) -> tuple[str | None, list[Destination],
                                                                bool, str]:
        """(model, destinations, send the SEG too, why) for a series."""
        for number, rule in enumerate(self.rules, 1):
            if rule.matches(body_part, description):
                destinations = rule.destinations if rule.destinations is not None \
                    else self.destinations
                seg = rule.send_seg if rule.send_seg is not None else self.send_seg
                return rule.model, list(destinations), seg, rule.describe(number)
        return None, list(self.destinations), self.send_seg, "no rule matched"


def load_node_config(path: str | Path | None, home: str | Path | None = None,
                     **overrides: Any) -> NodeConfig:
    """Read and check the node's settings file (None: ``dicom-node.yaml`` in the store's folder
    ``home``, which is read, never created); ``overrides`` (None: not given) replace its keys
    (the command's flags: ``ae_title``, ``port``, ``host``, ``tls_cert``, ``tls_key``,
    ``tls_ca``). Model names are checked against the shipped models; TLS files are loaded.

    Raises:
        InvalidInputError: ``"<file>: <where>: <problem>"``, one line; nothing is written.
    """
    import yaml

    if path is None:
        from autocontour.store.database import default_home

        default = Path(home if home is not None else default_home()) / "dicom-node.yaml"
        if not default.is_file():
            raise InvalidInputError(
                f"the DICOM node needs its settings: --config FILE, or {default} (owner, "
                "calling AE titles, rules, destinations; see the README, 'The DICOM node')")
        path = default
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise InvalidInputError(f"{name}: no such settings file")
    if not path.is_file():
        raise InvalidInputError(f"{name}: is a folder, not a settings file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InvalidInputError(f"{name}: not a text (YAML) file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidInputError(f"{name}: not valid YAML{where} ({problem})") from None
    if not isinstance(data, dict):
        raise InvalidInputError(f"{name}: must be a mapping of settings (owner, "
                                "calling_ae_titles, rules, destinations, ...)")
    tls = {k: overrides.pop(f"tls_{k}", None) for k in ("cert", "key", "ca")}
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    if any(v is not None for v in tls.values()):
        base = dict(data.get("tls") or {}) if isinstance(data.get("tls"), dict) else {}
        data["tls"] = {**base, **{k: v for k, v in tls.items() if v is not None}}
    try:
        config = NodeConfig(**data, source=name)
    except ValidationError as exc:
        raise InvalidInputError(f"{name}: {_problems(exc)}") from None
    except TypeError as exc:  # a key that is not a string
        raise InvalidInputError(f"{name}: {exc}") from None
    _check_models(config, name)
    if config.tls is not None:
        server_context(config.tls, name)  # the files load
    return config


def _problems(exc: ValidationError) -> str:
    def where(loc: tuple[Any, ...]) -> str:
        text = ""
        for part in loc:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text or "settings"

    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown setting"
        elif error["type"] == "missing":
            message = "missing (required)"
        lines.append(f"{where(error['loc'])}: {message}")
    return "; ".join(lines)


def _check_models(config: NodeConfig, name: str) -> None:
    from autocontour.jobs import list_models

    names = [m["name"] for m in list_models()]
    for number, rule in enumerate(config.rules):
        model = rule.model
        if model is None or model in names:
            continue
        if model.endswith((".pt", ".pth")) or "/" in model:
            if not Path(model).is_file():
                raise InvalidInputError(f"{name}: rules[{number}].model: {model}: no such "
                                        "model file")
            continue
        raise InvalidInputError(f"{name}: rules[{number}].model: "
                                + did_you_mean(f"unknown model {model!r}", model, names))


def _load(what: str, name: str, action: Any) -> None:
    try:
        action()
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise InvalidInputError(f"{name}: {what}: cannot load ({reason})") from None


def server_context(tls: Tls, name: str = "TLS") -> ssl.SSLContext:
    """The listener's TLS context: the node's certificate; callers must present one signed by
    ``tls.ca`` when it is given (mutual TLS).

    Raises:
        InvalidInputError: a file that cannot be loaded (which and why).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(f"tls.cert {tls.cert} / tls.key {tls.key}", name,
          lambda: context.load_cert_chain(tls.cert, tls.key))
    if tls.ca is not None:
        _load(f"tls.ca {tls.ca}", name, lambda: context.load_verify_locations(tls.ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(tls: Tls | None) -> ssl.SSLContext:
    """The context of a send to a ``tls: true`` destination: its certificate is verified against
    ``tls.ca`` (else the system's CAs); the node's certificate is presented when configured."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                         cafile=str(tls.ca) if tls and tls.ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is not None:
        context.load_cert_chain(tls.cert, tls.key)
    return context
