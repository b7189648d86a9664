"""The labs by number."""

from __future__ import annotations

from labs.errors import LabError
from labs.lab import Lab
from labs.lab01 import LAB as LAB01
from labs.lab02 import LAB as LAB02
from labs.lab03 import LAB as LAB03
from labs.lab04 import LAB as LAB04
from labs.lab05 import LAB as LAB05
from labs.lab06 import LAB as LAB06
from labs.lab07 import LAB as LAB07

LABS: dict[str, Lab] = {lab.number: lab for lab in (LAB01, LAB02, LAB03, LAB04, LAB05, LAB06, LAB07)}


def get_lab(text: str) -> Lab:
    number = text.zfill(2) if text.isdigit() else text
    if number not in LABS:
        raise LabError(f"no lab {text!r}: the labs are {', '.join(LABS)}")
    return LABS[number]
