"""Which HTP the context binary is compiled for: the ``[accelerator]`` of the device profile that asked for the
qualcomm target (``htp_arch``, ``soc_model``), else Snapdragon 8 Gen 3 (HTP v75, SoC 57), said as such."""
from __future__ import annotations

from .context import DEFAULT_HTP_ARCH, DEFAULT_SOC_MODEL

DEFAULT_NAME = "Snapdragon 8 Gen 3"


def for_profiles(profiles) -> dict:
    """``{"htp_arch", "soc_model", "source"}`` from the first profile with an HTP accelerator; the default
    when none has one. ``source`` says where the values come from (it goes into the manifest)."""
    for profile in profiles:
        acc = profile.get("accelerator", {})
        if acc.get("kind") == "htp" and "htp_arch" in acc:
            return {"htp_arch": str(acc["htp_arch"]), "soc_model": str(acc.get("soc_model", DEFAULT_SOC_MODEL)),
                    "source": f"device profile {profile['name']}"}
    return {"htp_arch": DEFAULT_HTP_ARCH, "soc_model": DEFAULT_SOC_MODEL,
            "source": f"default: no device profile names an HTP, so {DEFAULT_NAME}"}
