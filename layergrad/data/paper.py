"""``paper:`` sources: the paper's datasets by task and style (docs/guide/how-it-works.md, "The data").

``paper:gsm8k/none`` | ``/simplified`` | ``/detailed`` (likewise aqua, strategyqa, ecqa, creak,
sensemaking), ``paper:math-algebra/simplified`` (math-counting, math-geometry; no None CoT),
``paper:wiki/popular-100`` (-500, -1000, unpopular); append ``@irrelevant`` for the
original's shuffled versions. Files come from a local copy of the original repository's
``data/`` folder (``paper_data=`` / ``--paper-data DIR`` / ``$LAYERGRAD_PAPER_DATA``) or are
downloaded once into the cache, verified against the checksums below.
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from pathlib import Path

from layergrad.errors import InputError, did_you_mean

REPO_RAW = "https://raw.githubusercontent.com/MingLiiii/Layer_Gradient/0fb19e1e4710570353b8dbdd3fbd8a39bfc71039/data"
COT_TASKS = ("aqua", "gsm8k", "strategyqa", "ecqa", "creak", "sensemaking")
COT_STYLES = {"none": "no_cot", "simplified": "with_cot", "detailed": "with_cot_gpt4o"}
MATH_TASKS = {"math-algebra": "algebra", "math-counting": "counting_probability", "math-geometry": "geometry"}
WIKI = {"popular-100": "popular_wikipedia_100", "popular-500": "popular_wikipedia_500",
        "popular-1000": "popular_wikipedia_1000", "unpopular": "long_tail_wikipedia"}

SHA256 = {
    "cot_500/aqua_train_no_cot.json": "952d54a0dfe56f3a56e20d2efb66750114d8aa2cfa91289d6aff9b1e8a81d13a",
    "cot_500/aqua_train_with_cot.json": "1df50956904a982b1343597e041ceb750d4f71a86b7602197ccce1d6e5a4ebf9",
    "cot_500/aqua_train_with_cot_gpt4o.json": "bcc66b84ff8393618f420064059a532d2cbbf192bc3968db8fc579b0307a35ea",
    "cot_500/creak_train_no_cot.json": "f28d244bf5799518c174bbba84fbe27b6213e329b75b3b977e47182beeda3aca",
    "cot_500/creak_train_with_cot.json": "7860dfd862e2c9a259bc48e609dd88926c157cc34b193720334b43d6b43b020b",
    "cot_500/creak_train_with_cot_gpt4o.json": "8cf725f746949eb95b7ccc0cd9316e4564604d5e01fbf2eebc0e0a9d97e67aec",
    "cot_500/ecqa_train_no_cot.json": "c6c7af5ab3ef63ce29130ac09501a1f45f0439700ac0c229af7aaacee0d5f9eb",
    "cot_500/ecqa_train_with_cot.json": "d230379c94bb2003369cc2f4d1a39eb2c1a1bdbc0e5e96373caa449541c638ad",
    "cot_500/ecqa_train_with_cot_gpt4o.json": "9e86957d551d0fb4bd2a95e16954f1a3fbad2e5a06c06010e425b5622372d6b4",
    "cot_500/gsm8k_train_no_cot.json": "2d4b33ab79a9b7471498f85368f596d01ec5ec0dab932f5bf3fbb26066b010b8",
    "cot_500/gsm8k_train_with_cot.json": "03a1f7c1d0b674efa096761ccb3fde03dcb2475129c96406ee090c1f01977dba",
    "cot_500/gsm8k_train_with_cot_gpt4o.json": "4e88503ac219a2dc4933d1449f0970f4a5d132a529d0de858cd396cfbb5f2f85",
    "cot_500/sensemaking_train_no_cot.json": "46c3d3d4594527c6275590a5ba880e8188f72d54456f552b772529dcf980696a",
    "cot_500/sensemaking_train_with_cot.json": "db143043e36362aa6f642c96da06b23de707aff912721a78e7b17113231d35a2",
    "cot_500/sensemaking_train_with_cot_gpt4o.json": "927aa8c781d85a9cf30499282009e21b9be61f67e4ec46971dec940957c485eb",
    "cot_500/strategyqa_train_no_cot.json": "fa73d2828a2e1d5ebbb26314370a575201812b494a7d27e84acf1fd1a681e461",
    "cot_500/strategyqa_train_with_cot.json": "d31f42ac0d9a508cb1e26ca83a6a4827e111992b91daf39ee22ee985b48158de",
    "cot_500/strategyqa_train_with_cot_gpt4o.json": "098514cad81f82b3adcffe12bd8b76118caf42eedecbce3d2bd1821c9c23ab8d",
    "cot_500_wrong_answer_shuffle/aqua_train_no_cot.json": "568eda83482407d98524132179aa0c8cf4cb6732d0517dcb5cbcb2177c9f036d",
    "cot_500_wrong_answer_shuffle/aqua_train_with_cot.json": "6ae5aea7630071abb879539538ae83150480579ee3d66ca9357924cf8a097d9b",
    "cot_500_wrong_answer_shuffle/aqua_train_with_cot_gpt4o.json": "d417ba79bdeb3210044419cc77444f5e1cd793c372f8072298ea01260b34cf39",
    "cot_500_wrong_answer_shuffle/creak_train_no_cot.json": "7cb3865eb1082f8beb8b3d78dea5d0c6835ac107e91628e2607c2a745bde8cf4",
    "cot_500_wrong_answer_shuffle/creak_train_with_cot.json": "30be2d501ff6a10767479ec0213e129545e24e09c173e26fb4d37cf5ce14a933",
    "cot_500_wrong_answer_shuffle/creak_train_with_cot_gpt4o.json": "32b73c4474be4c871e3c6a1b0c769701b91c8828580e7f575a70afd6cebafe72",
    "cot_500_wrong_answer_shuffle/ecqa_train_no_cot.json": "24b442d605355e77a5cce23b56a61b1a3b22e23ea011371907d88dc7366f4a45",
    "cot_500_wrong_answer_shuffle/ecqa_train_with_cot.json": "9a2b8a18c5128234e020d7dac00b203d10fcb3639457894eaf800bb4e9d3709a",
    "cot_500_wrong_answer_shuffle/ecqa_train_with_cot_gpt4o.json": "e5825437dc8b2e8360e1d7aba8b4cd7bcb26d156686c706679c70b10ff09ebe6",
    "cot_500_wrong_answer_shuffle/gsm8k_train_no_cot.json": "5f6b8ad693adae5c558189e53ba5127ef19fe96acc22674adc82a3e73a8514d1",
    "cot_500_wrong_answer_shuffle/gsm8k_train_with_cot.json": "85d8109a02e76c174d883a4d3ed3db06b88f2cc6e3443f95e6f54d0480d3d7fa",
    "cot_500_wrong_answer_shuffle/gsm8k_train_with_cot_gpt4o.json": "5499ec4c5e4304168cdbfeeae10b90e83a6ce54036f183d5ea25872e4e18872f",
    "cot_500_wrong_answer_shuffle/sensemaking_train_no_cot.json": "7ed4a94e0312af1e1b59db363cefb9bec2413cd360777b88cf4eeb580e421b4a",
    "cot_500_wrong_answer_shuffle/sensemaking_train_with_cot.json": "f6769991bcfbd980f6d9a4a9d61390021527ae9947c82cd44a34124f23d1512c",
    "cot_500_wrong_answer_shuffle/sensemaking_train_with_cot_gpt4o.json": "93b550e5d025c6fa85886e3cb89bec82ea3fec1bac445a4f97712263455289b8",
    "cot_500_wrong_answer_shuffle/strategyqa_train_no_cot.json": "883a5ddb5001c6268afa948d8d66d6a03950cc8fa6ae50c9a01f66b4bf81bdeb",
    "cot_500_wrong_answer_shuffle/strategyqa_train_with_cot.json": "1762f47cad82e0c9a9d131678256b642c4a5daabec95a92f2ec2ed5a0951b53d",
    "cot_500_wrong_answer_shuffle/strategyqa_train_with_cot_gpt4o.json": "5c34bbfcfd411fbe4856b886c6b545d26b1254b0bd2a84e2d136756cbf0c603f",
    "lighteval_math/algebra_with_cot.json": "c722a159e3f43ac6e823735582f2d131310961292c082296ee55fa3d277dc710",
    "lighteval_math/algebra_with_cot_gpt4o.json": "c5fb6de6ebb6ac1a6f8caf07b29ae4df4acb7a08840191e8aa088ad4a4b2abfd",
    "lighteval_math/counting_probability_with_cot.json": "d5c5c2f3b275619994bd2d5287bcceda1bf3b204a5023c1a62a0ba3354e175f5",
    "lighteval_math/counting_probability_with_cot_gpt4o.json": "27fcf70117dabc7a28b8fce03a65299e9482407c89e671c29131923abb5a99a7",
    "lighteval_math/geometry_with_cot.json": "3a65c73aa6d81d183142f06106a7c6c73c0f96e574ca58f8fbf52a8b69b94914",
    "lighteval_math/geometry_with_cot_gpt4o.json": "fabd682af4f150652e6f2d50dbc759440630040ce2bfd81103c4d23dd40fb50d",
    "lighteval_math_wrong_answer_shuffle/algebra_with_cot.json": "623d0754e8638521135d555115fa2cf8029114c1283afd23d821f6a00dcb2275",
    "lighteval_math_wrong_answer_shuffle/algebra_with_cot_gpt4o.json": "4b3ad260a9e5946ee18f9d967e3a392e6391124ce3ad3387c8472ee2f51fab24",
    "lighteval_math_wrong_answer_shuffle/counting_probability_with_cot.json": "74597a51a96aa5181a22444d01f0dc2966fe49240128eb92b35c609815869b12",
    "lighteval_math_wrong_answer_shuffle/counting_probability_with_cot_gpt4o.json": "b3f92ad53cac8dd02f7625177d70291b210453424fd5aa3a713b0f08e1ce5193",
    "lighteval_math_wrong_answer_shuffle/geometry_with_cot.json": "796fa857f1afc11fe8929caa8636ec223b3d72c75906a68834f24efa5e415037",
    "lighteval_math_wrong_answer_shuffle/geometry_with_cot_gpt4o.json": "96769813fbfd8f4522c8df62f282b3e5c1cd238a6cba0555f49a490d9218248d",
    "wiki_popularity/long_tail_wikipedia.json": "37f0447c7a6f2827c8826825998e11a31a5148bf1347f3469cd74ab905ef4402",
    "wiki_popularity/popular_wikipedia_100.json": "e00aa97ef35795ec3fcc2f6b9282e9aad7cab33c25bffe86bc6eca731388140c",
    "wiki_popularity/popular_wikipedia_1000.json": "86db02561af457ed1c8ccd99c72920520b432e32ec03dec9065fcb54374dc9a5",
    "wiki_popularity/popular_wikipedia_500.json": "5088386bc9025ec877c2959ce93cc06365d68575297d2bce0824b9a401308161",
    "wiki_popularity_wrong_answer_shuffle/long_tail_wikipedia.json": "66dd1c4450044f1dba564c57172918226903b44180c3d41f8bd79f08ecfc63fc",
    "wiki_popularity_wrong_answer_shuffle/popular_wikipedia_100.json": "6e20dc0e19afcf601dbb67e1e00c208fb0e6b1b9db1afc4abbb62ccd09c19116",
    "wiki_popularity_wrong_answer_shuffle/popular_wikipedia_1000.json": "a5e548d00f1150a85c88ab3e077ca31ec1a24fc019ec8c0070e31806656f3bc5",
    "wiki_popularity_wrong_answer_shuffle/popular_wikipedia_500.json": "4c3133f1caa1633adfd92e433e375d6ab5213b4c0ade8a3225af59b6f5335881",
}


def paper_names() -> list[str]:
    """Every valid ``paper:`` name (without @irrelevant)."""
    names = [f"{t}/{s}" for t in COT_TASKS for s in COT_STYLES]
    names += [f"{t}/{s}" for t in MATH_TASKS for s in ("simplified", "detailed")]
    return names + [f"wiki/{w}" for w in WIKI]


def relative_path(name: str) -> str:
    """'gsm8k/detailed@irrelevant' -> 'cot_500_wrong_answer_shuffle/gsm8k_train_with_cot_gpt4o.json'."""
    base, _, variant = name.partition("@")
    if variant not in ("", "irrelevant") or base not in paper_names():
        hint = did_you_mean(base, paper_names())
        raise InputError(f"unknown paper source 'paper:{name}'.{hint} Known: paper:<task>/<style>[@irrelevant], "
                         f"tasks {', '.join(COT_TASKS)}, {', '.join(MATH_TASKS)}, wiki")
    task, style = base.split("/")
    suffix = "_wrong_answer_shuffle" if variant else ""
    if task in COT_TASKS:
        return f"cot_500{suffix}/{task}_train_{COT_STYLES[style]}.json"
    if task in MATH_TASKS:
        return f"lighteval_math{suffix}/{MATH_TASKS[task]}_{'with_cot' if style == 'simplified' else 'with_cot_gpt4o'}.json"
    return f"wiki_popularity{suffix}/{WIKI[style]}.json"


def paper_file(name: str, paper_data: str | None = None) -> Path:
    """Local path of a paper source, from the given folder, $LAYERGRAD_PAPER_DATA or the cache."""
    rel = relative_path(name)
    root = paper_data or os.environ.get("LAYERGRAD_PAPER_DATA")
    if root:
        path = Path(root).expanduser() / rel
        if not path.is_file():
            raise InputError(f"paper data file not found: {path}; point --paper-data at the original data/ folder")
        return path
    from layergrad.models import cache_dir

    path = cache_dir() / "paper-data" / rel
    if not path.is_file():
        download(rel, path)
    return path


def download(rel: str, path: Path) -> None:
    """Fetch one file of the original repository and check its SHA-256."""
    download_checked(f"{REPO_RAW}/{rel}", SHA256[rel], path, f"paper data {rel}", "--paper-data")


def download_checked(url: str, sha256: str, path: Path, what: str, option: str) -> None:
    """Fetch ``url`` into ``path`` (atomically) if its SHA-256 is ``sha256``; else a one-line error naming
    ``option``, the way to use a local copy instead."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            payload = response.read()
    except OSError as exc:
        raise InputError(f"cannot download {what} ({exc}); pass {option} DIR with a local copy") from None
    if hashlib.sha256(payload).hexdigest() != sha256:
        raise InputError(f"downloaded {what} does not match its checksum; pass {option} DIR with a local copy")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(payload)
    tmp.replace(path)


def paper_records(name: str, paper_data: str | None = None) -> list:
    path = paper_file(name, paper_data)
    return json.loads(path.read_text(encoding="utf-8"))
