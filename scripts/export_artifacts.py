"""Compile FlareCoordinator with forge and write flare/chain/artifacts/FlareCoordinator.json.

Run from anywhere: ``.venv/bin/python scripts/export_artifacts.py``. ``--check`` compiles
and exits 1 if the checked-in artifact differs from what it would write (CI uses it; so does
``tests/federation/test_artifacts_fresh.py``); it ignores solc's metadata trailer (see
``strip_metadata``) and compares everything else.

The artifact ships inside the Python package so that users deploy without a compiler. It
holds the ABI, the creation and runtime bytecode, the compiler and its settings, and the
SHA-256 of every source file the contract was compiled from, plus one ``sourceHash`` over
them: a source edited after the last export is detected from the sources alone, even where
forge is not installed.

forge runs from the repository root (``foundry.toml`` names the ``scripts/solc`` shim by a
relative path) into a temporary output directory, so it neither reads nor disturbs
``contracts/out``. The build is deterministic: the same sources, compiler and settings
give the same bytecode.
"""

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = "FlareCoordinator"
SOURCE = f"contracts/src/{CONTRACT}.sol"
ARTIFACT = ROOT / "flare" / "chain" / "artifacts" / f"{CONTRACT}.json"
FORGE = ROOT / "node_modules" / ".bin" / "forge"


class ExportError(Exception):
    """forge is missing or the build failed."""


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_hash(sources: dict[str, str]) -> str:
    """One SHA-256 over the per-file hashes: ``sha256`` of ``path NUL hash LF`` sorted by path."""
    lines = "".join(f"{path}\0{digest}\n" for path, digest in sorted(sources.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


def current_sources(paths: list[str]) -> dict[str, str]:
    """SHA-256 of each source file as it is now in the working tree."""
    return {path: file_sha256(ROOT / path) for path in sorted(paths)}


def compile_contract() -> dict[str, Any]:
    """forge's artifact of the contract, built fresh into a temporary directory."""
    if not FORGE.exists():
        raise ExportError(f"{FORGE} not found: run scripts/install_tools.sh")
    with tempfile.TemporaryDirectory(prefix="flare-export-") as scratch:
        out = Path(scratch) / "out"
        command = [
            str(FORGE),
            "build",
            "--out",
            str(out),
            "--cache-path",
            str(Path(scratch) / "cache"),
            SOURCE,
        ]
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ExportError(f"forge build failed:\n{result.stdout}\n{result.stderr}")
        return json.loads((out / f"{CONTRACT}.sol" / f"{CONTRACT}.json").read_text())


def artifact_document(built: dict[str, Any]) -> dict[str, Any]:
    """The shipped artifact: ABI, bytecodes, compiler settings, source hashes."""
    metadata = built["metadata"]
    settings = metadata["settings"]
    sources = current_sources(list(metadata["sources"]))
    for path, info in metadata["sources"].items():
        compiled = info["keccak256"]
        if compiled != "0x" + _keccak_hex(ROOT / path):
            raise ExportError(f"{path} changed while compiling; run the export again")
    return {
        "contractName": CONTRACT,
        "sourceName": SOURCE,
        "abi": built["abi"],
        "bytecode": built["bytecode"]["object"],
        "deployedBytecode": built["deployedBytecode"]["object"],
        "compiler": {
            "version": metadata["compiler"]["version"],
            "evmVersion": settings["evmVersion"],
            "optimizer": settings["optimizer"],
            "bytecodeHash": settings.get("metadata", {}).get("bytecodeHash", "ipfs"),
        },
        "sources": sources,
        "sourceHash": source_hash(sources),
        "generatedBy": "scripts/export_artifacts.py",
    }


def _keccak_hex(path: Path) -> str:
    from eth_utils import keccak

    return keccak(path.read_bytes()).hex()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2) + "\n"


def strip_metadata(code: str) -> str:
    """Bytecode without solc's CBOR metadata trailer (its length is in the last two bytes).

    The trailer hashes the compiler's metadata, which also lists the remappings forge
    detects under ``node_modules``; two installs that differ only there compile the same
    code with different trailers.
    """
    raw = bytes.fromhex(code.removeprefix("0x"))
    length = int.from_bytes(raw[-2:], "big")
    return "0x" + raw[: -(length + 2)].hex()


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    """What must agree between two exports of the same sources: all but the metadata trailer."""
    return {
        **document,
        "bytecode": strip_metadata(document["bytecode"]),
        "deployedBytecode": strip_metadata(document["deployedBytecode"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the checked-in artifact is stale"
    )
    args = parser.parse_args()
    try:
        document = artifact_document(compile_contract())
    except ExportError as exc:
        print(f"export_artifacts: {exc}", file=sys.stderr)
        return 2
    if args.check:
        shipped = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else None
        if shipped is None or comparable(shipped) != comparable(document):
            print(
                f"stale artifact (rerun scripts/export_artifacts.py): {ARTIFACT}", file=sys.stderr
            )
            return 1
        return 0
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTIFACT.write_text(render(document))
    print(f"wrote {ARTIFACT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
