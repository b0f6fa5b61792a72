"""A fit saved to a file (`pplc run --save`), and loaded back only with the spec
and the data it was made from.

The file is JSON: the spec's text and SHA-256, the data's SHA-256, the guide
family, the report, and the guide's parameters (unconstrained, by their
`pyro.param` names). Loading recompiles the saved text, so the report and
the guide can be used without the original file; pairing a fit with a spec
or data whose hash differs is an error, never a silent mismatch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from compiler import files
from compiler.errors import DataError, PplError
from compiler.report import Nested, Report

FORMAT = "pplc-fit/1"


class SavedFit(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["pplc-fit/1"] = FORMAT
    spec_name: str
    spec_text: str
    spec_sha256: str
    data_origin: str
    data_sha256: str
    guide_family: str
    report: Report
    guide_parameters: dict[str, Nested]  # unconstrained values by pyro.param name


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def save(report: Report, path: str | Path) -> None:
    program, data, guide_state = report._fitted()
    saved = SavedFit(
        spec_name=program.source.name, spec_text=program.source.text, spec_sha256=sha256(program.source.text),
        data_origin=data.origin, data_sha256=data.digest, guide_family=program.guide_family, report=report,
        guide_parameters={name: value.tolist() for name, value in guide_state["params"].items()})
    text = saved.model_dump_json(exclude_none=True)
    files.write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def load(path: str | Path) -> SavedFit:
    try:
        return SavedFit.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise PplError(f"cannot read fit file {path}: {error.strerror or error}") from None
    except (ValidationError, json.JSONDecodeError, UnicodeDecodeError):
        raise PplError(f"{path} is not a pplc fit file", hint="write one with `pplc run SPEC --save FILE`") from None


def check_pairing(saved: SavedFit, spec_text: str | None, data) -> None:
    """The spec and data given now must be those the fit was made from."""
    if spec_text is not None and sha256(spec_text) != saved.spec_sha256:
        raise PplError(f"this fit was made from a different version of {saved.spec_name} "
                       f"(sha256 {saved.spec_sha256[:12]}…)", hint="fit again with `pplc run --save`")
    if data is not None and data.digest != saved.data_sha256:
        raise DataError(f"this fit was made from other data ({saved.data_origin}, sha256 "
                        f"{saved.data_sha256[:12]}…) than {data.origin}", hint="pass the data it was fitted to")
