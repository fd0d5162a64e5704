"""The follow-up paper's data (arXiv 2504.10766, ``MingLiiii/Gradient_Unified``, folder
``_data/10k_version/``): high- and low-quality instruction subsets and R1 reasoning traces.

Layout: ``<metric>/<pool>_10k_{highest,lowest}_200.json`` (the 200 records of a pool's 10k sample with
the highest / lowest value of a quality metric; five metrics, three pools) and
``reasoning/{gsm8k,s1}_R1.json``. Found by that layout in a local folder (``followup_data=`` /
``--followup-data DIR`` / ``$LAYERGRAD_FOLLOWUP_DATA``: any metric folder of the layout counts, also
one this module does not know), or downloaded once into the cache from the public repository and
checked against the checksums below (every file of the public folder).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from layergrad.errors import InputError

REPO_RAW = ("https://raw.githubusercontent.com/MingLiiii/Gradient_Unified/"
            "f86e985b7b7de720e0178de4afb8d953083da070/_data/10k_version")
PAIR_FILE = re.compile(r"^(?P<pool>[A-Za-z0-9]+)_10k_(?P<side>highest|lowest)_200\.json$")
REASONING = {"gsm8k-r1": "reasoning/gsm8k_R1.json", "s1-r1": "reasoning/s1_R1.json"}
SIDES = {"highest": "high", "lowest": "low"}

SHA256 = {
    "diff/her_10k_highest_200.json": "1273814b5348d55ed402bc3b55210fab9d5f7341ea5653cea69c98cc7962e4f5",
    "diff/her_10k_lowest_200.json": "98bb3fcbf6bbb60e2cbbd2e0aea74d6773caa8291b7cd18f4a101e0592edcc3a",
    "diff/mag_10k_highest_200.json": "8ef987397f0a1f9f8cdfb7d3ed6b442f4e236c216a32d1445ca743fa8bf49cee",
    "diff/mag_10k_lowest_200.json": "caa935f4156b0015f9291fc51312fd638d68a88c4aff5ad77e721cc91c639df9",
    "diff/wiz_10k_highest_200.json": "234bfd2710fe5c83d8b53409f825e40cc6cc93f675b3103545362cc7ef637c6b",
    "diff/wiz_10k_lowest_200.json": "c044c0da5dd1e40a11c461b56c02e16f0b4d44c730d43168a71eb4c41f50ba42",
    "ifd_gpt2/her_10k_highest_200.json": "d379f8858c0705285fec1dfbc92d0c9686844f1cb13c984b835d495c01b8d459",
    "ifd_gpt2/her_10k_lowest_200.json": "cb14e5ab3b27b270509c1cca3b42daff0b8eab7eb32f92b3449496dad4d3c915",
    "ifd_gpt2/mag_10k_highest_200.json": "b1073f431940e8c43f1bd216c0a1af1a42e9551f657a8a59e5f8414319eab625",
    "ifd_gpt2/mag_10k_lowest_200.json": "cf91f121a9296b0811fe91e5dc45488c6b0d09982642c85db2111bb7c1d5f446",
    "ifd_gpt2/wiz_10k_highest_200.json": "0bf5a10c69803004bcc9fb0e6e2d9074705ad1036e6905dfae93e29e84feddd5",
    "ifd_gpt2/wiz_10k_lowest_200.json": "bd72a39fcec0b5fcea53d0e0bb8c3556039f35956e901315fff39f45b48a5233",
    "ifd_qwen7b/her_10k_highest_200.json": "ea387f2c6374baeafe4ba6b8f7b72ec5e92dc96d920c1023b777f7f5dcb48eb2",
    "ifd_qwen7b/her_10k_lowest_200.json": "7350b4584f4ebced0316a3a9db1d65ff83db5adc9b28c3eaced4c5d4413d4bd6",
    "ifd_qwen7b/mag_10k_highest_200.json": "ece5cc6f8081665240fe76f670c9158c949ee2ed9386c083f7458a32670dc67c",
    "ifd_qwen7b/mag_10k_lowest_200.json": "9c789d088175ee0af2ab8dabde7e42823ed8595186df9236845077d549dbaa51",
    "ifd_qwen7b/wiz_10k_highest_200.json": "0ff6f5e80dc31e37311223cb1ae81e438c7104cebeb5207e162a49e2e4da1c24",
    "ifd_qwen7b/wiz_10k_lowest_200.json": "c439a207077629d42513cfb9631ec8fa3f892c27459e1a13f58e90407297bec1",
    "instag/her_10k_highest_200.json": "6c46a7207a5ace5a28ca339dced95c36285d000bad3c8c0c03ea0751e2a2f769",
    "instag/her_10k_lowest_200.json": "124b98c400b3875e838a210ab533b31e84b57624bf502e72da1b68e27e4af04d",
    "instag/mag_10k_highest_200.json": "9daf162cebcc7c075f45c473a1dccc204eb33833e3f885a4f46e1aac4d91a474",
    "instag/mag_10k_lowest_200.json": "42f908c3cce2775436ab7f5cbb1da457f6252317df0253c96c1e55931f4ca606",
    "instag/wiz_10k_highest_200.json": "37e47051b2fd1708860f309b4f4251b39cccd828a0f2176264e56ae8fa59282e",
    "instag/wiz_10k_lowest_200.json": "a39b0c8a00e6229405d65d59dbff0d5f54ba07379d4b17915a433568d7e415ef",
    "reasoning/gsm8k_R1.json": "5856d67368eecc7f2276003bf7f65abd20efcddae2b087a47c828c7165fec76e",
    "reasoning/s1_R1.json": "70ccb7c62a3132a0ae29ba1c7b723b2352b2025c932afe4c9c3b57a68bcce276",
    "reward/her_10k_highest_200.json": "90b480ded893a49ea3cbf9250fdf2ebe8e13dacb6db3517518a4b60469b47073",
    "reward/her_10k_lowest_200.json": "9b281f31a1433363f6a9aa023898eca4d10ab38fa8e1dc45692a6fd41ded745f",
    "reward/mag_10k_highest_200.json": "86014f2323eaf0fb77b92e587a6034f680e540d3b81970a4f9ca1a793cfc098d",
    "reward/mag_10k_lowest_200.json": "b2450391fb1d34ab65cbd847c3c43b84f519f355f0b0b69fb5759772dab46241",
    "reward/wiz_10k_highest_200.json": "b30fbe991c4cc6910440b85c75bb4b1ca9b360166d02099f4e5c795374d1fd1f",
    "reward/wiz_10k_lowest_200.json": "5efe3533fe612208033f4885eb24ee749da34598dd2325843b99f3479e299163",
}


@dataclass(frozen=True)
class Layout:
    """What a follow-up data folder holds: quality pairs {(metric, pool): {high, low: path}}, the
    reasoning sets {name: path}, and a note per file the layout expects but the folder lacks."""

    pairs: dict
    reasoning: dict
    missing: list


def followup_root(followup_data: str | None = None) -> Path | None:
    """The local folder asked for (argument, then $LAYERGRAD_FOLLOWUP_DATA), or None (download)."""
    root = followup_data or os.environ.get("LAYERGRAD_FOLLOWUP_DATA")
    if not root:
        return None
    path = Path(root).expanduser()
    if not path.is_dir():
        raise InputError(f"follow-up data folder not found: {path}; point --followup-data at the folder that holds "
                         "<metric>/<pool>_10k_highest_200.json")
    return path


def layout(followup_data: str | None = None) -> Layout:
    """The quality pairs and reasoning sets of the local folder (by layout) or of the public folder."""
    root = followup_root(followup_data)
    names = sorted(SHA256) if root is None else sorted(str(p.relative_to(root)) for p in root.glob("*/*.json"))
    halves: dict = {}
    for name in names:
        metric, _, file = name.partition("/")
        match = PAIR_FILE.match(file)
        if match and metric != "reasoning":
            halves.setdefault((metric, match["pool"]), {})[SIDES[match["side"]]] = name
    pairs, missing = {}, []
    for key, found in sorted(halves.items()):
        if len(found) == 2:
            pairs[key] = {side: fetch(found[side], root) for side in ("high", "low")}
        else:
            side = "lowest" if "high" in found else "highest"
            missing.append(f"{key[0]}/{key[1]}_10k_{side}_200.json is missing: the pair {key[0]}/{key[1]} is left out")
    reasoning = {}
    for name, rel in REASONING.items():
        if root is None or (root / rel).is_file():
            reasoning[name] = fetch(rel, root)
        else:
            missing.append(f"{rel} is missing: the reasoning set {name} is left out")
    return Layout(pairs, reasoning, missing)


def fetch(rel: str, root: Path | None) -> Path:
    """A file of the local folder, or the cached (downloaded once, checksum-verified) public copy."""
    if root is not None:
        return root / rel
    from layergrad.models import cache_dir

    path = cache_dir() / "followup-data" / rel
    if not path.is_file():
        download(rel, path)
    return path


def download(rel: str, path: Path) -> None:
    from layergrad.data.paper import download_checked

    download_checked(f"{REPO_RAW}/{rel}", SHA256[rel], path, f"follow-up data {rel}", "--followup-data")
