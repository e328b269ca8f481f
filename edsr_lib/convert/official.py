"""The official EDSR-PyTorch checkpoint files, recognised by the sha256 of their bytes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._files import sha256sum

__all__ = ["OFFICIAL_CHECKPOINTS", "OfficialCheckpoint", "identify_file"]


@dataclass(frozen=True)
class OfficialCheckpoint:
    """An official EDSR-PyTorch checkpoint file.

    Attributes:
        filename: Its published file name.
        variant: The registered edsr-lib variant whose weights it holds.
        sha256: Its full hex digest or, where that is not recorded, the 8-digit prefix that
            its file name carries (the check ``torch.hub`` makes).
        size: Its size in bytes, where known.
    """

    filename: str
    variant: str
    sha256: str
    size: int | None = None

    @property
    def full_digest(self) -> bool:
        """True when :attr:`sha256` is the full digest rather than the file name's prefix."""
        return len(self.sha256) == 64


#: Digest (full, or the file name's 8-digit prefix) -> official checkpoint.
OFFICIAL_CHECKPOINTS: dict[str, OfficialCheckpoint] = {
    entry.sha256: entry
    for entry in (
        OfficialCheckpoint(
            "edsr_baseline_x2-1bc95232.pt",
            "edsr_baseline_x2",
            "1bc9523228fdc3b0a5ddb0d7062001e22b31bbb398ae09cfdefb97e8ee06e171",
            5_490_680,
        ),
        OfficialCheckpoint(
            "edsr_baseline_x3-abf2a44e.pt",
            "edsr_baseline_x3",
            "abf2a44e7a137228efa42a4264a23e12603168d43ac7596b1adef40c649b9240",
            6_229_240,
        ),
        OfficialCheckpoint(
            "edsr_baseline_x4-6b446fab.pt",
            "edsr_baseline_x4",
            "6b446fab734f4de74448d2fd1f3f990f5bae726e49dc7eff2ae9cefe444a1723",
            6_081_831,
        ),
        OfficialCheckpoint(
            "mdsr_baseline-a00cab12.pt",
            "mdsr_baseline",
            "a00cab12f80c2a7cf0a15c3b9fcae3cfe9273121e8942692303e5010d1dca5ef",
            12_924_933,
        ),
        OfficialCheckpoint(
            "mdsr-4a78bedf.pt",
            "mdsr",
            "4a78bedfdb8fb1ad81b4bce9e13a907c0355a2ab52adafe2da868f9bb9096311",
            31_869_146,
        ),
        OfficialCheckpoint("edsr_x2-0edfb8a3.pt", "edsr_x2", "0edfb8a3"),
        OfficialCheckpoint("edsr_x3-ea3ef2c6.pt", "edsr_x3", "ea3ef2c6"),
        OfficialCheckpoint("edsr_x4-4f62e9ef.pt", "edsr_x4", "4f62e9ef"),
    )
}


def identify_file(path: str | Path) -> OfficialCheckpoint | None:
    """Recognise an official EDSR-PyTorch checkpoint by the sha256 of its bytes.

    Args:
        path: The file to check.

    Returns:
        The matching entry of :data:`OFFICIAL_CHECKPOINTS`, or ``None``.
    """
    digest = sha256sum(path)
    return OFFICIAL_CHECKPOINTS.get(digest) or OFFICIAL_CHECKPOINTS.get(digest[:8])
