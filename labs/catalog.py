"""The labs by number."""

from __future__ import annotations

from labs.errors import LabError
from labs.lab import Lab
from labs.lab01 import LAB as LAB01

LABS: dict[str, Lab] = {lab.number: lab for lab in (LAB01,)}


def get_lab(text: str) -> Lab:
    number = text.zfill(2) if text.isdigit() else text
    if number not in LABS:
        raise LabError(f"no lab {text!r}: the labs are {', '.join(LABS)}")
    return LABS[number]
