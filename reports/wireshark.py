"""Where our Wireshark dissector for the DSMIPv4 extension (RFC 5454, type 152) lives, and how to load it.

Usage::

    subprocess.run(["tshark", *tshark_args(), "-r", str(pcap), "-Y", "dsmipv4"], ...)

The script is loaded with ``-X lua_script:<path>``. No extra option is needed as root: Debian's
``/usr/share/wireshark/init.lua`` sets ``run_user_scripts_when_superuser = true``, so tshark 4.0 runs
``-X lua_script`` scripts for root too (tests/unit/test_wireshark_dissector.py checks that the
``dsmipv4.*`` fields really get registered when run as root). See docs/wireshark.md.
"""

from __future__ import annotations

from pathlib import Path

DISSECTOR: Path = (Path(__file__).resolve().parent.parent / "tools" / "wireshark" / "dsmipv4.lua").resolve()
"""Absolute path of the Lua dissector (tools/wireshark/dsmipv4.lua in this repository)."""


def tshark_args() -> list[str]:
    """tshark/wireshark command-line arguments that load the DSMIPv4 dissector.

    Raises FileNotFoundError if the script is missing (e.g. a non-editable install of this package).
    """
    if not DISSECTOR.is_file():
        raise FileNotFoundError(f"DSMIPv4 Wireshark dissector not found at {DISSECTOR}")
    return ["-X", f"lua_script:{DISSECTOR}"]
