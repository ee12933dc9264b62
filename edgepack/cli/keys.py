"""``edgepack keys generate|id`` and ``edgepack sign``: Ed25519 keys and bundle signatures."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from .common import handle_errors, out_console, print_json

keys_app = typer.Typer(name="keys", no_args_is_help=True, help="Ed25519 signing keys for bundles.")
PASSPHRASE_NOTE = "the private key is encrypted with EDGEPACK_KEY_PASSPHRASE when that variable is set"


@keys_app.command("generate")
@handle_errors
def generate(
    out: Annotated[Path, typer.Option("--out", help="folder for NAME.key (private, mode 0600) and NAME.pub")],
    name: Annotated[str, typer.Option(help="file name stem of the pair")] = "edgepack-signing",
    force: Annotated[bool, typer.Option("--force", help="replace existing key files")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print paths and key id as JSON")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """Write a new Ed25519 key pair: sign with the .key file, give devices the .pub file (--trust-key)."""
    from edgepack_runtime.signing import load_trust_keys, write_keypair
    paths = write_keypair(out, name=name, force=force)
    key_id = load_trust_keys([paths["public"]])[0].key_id
    if json_out:
        print_json({"private": str(paths["private"]), "public": str(paths["public"]), "key_id": key_id})
        return
    out_console.print(f"[bold green]key pair[/] {escape(key_id)}")
    out_console.print(f"  private: {escape(str(paths['private']))}  (keep it secret; {PASSPHRASE_NOTE})")
    out_console.print(f"  public:  {escape(str(paths['public']))}  (devices: --trust-key {escape(str(paths['public']))})")


@keys_app.command("id")
@handle_errors
def key_id(
    key: Annotated[Path, typer.Argument(help="a .pub or .key file")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """Print the key id (fingerprint) of a public or private key file, as signatures name it."""
    from edgepack_runtime.signing import key_file_id
    typer.echo(key_file_id(key))


@handle_errors
def sign(
    bundle: Annotated[Path, typer.Argument(help="bundle file or unpacked bundle folder (rewritten in place)")],
    key: Annotated[Path, typer.Option("--key", help="private key file (from `edgepack keys generate`)")],
    signer: Annotated[Optional[str], typer.Option(help="a name or comment stored beside the signature "
                                                  "(informative: not covered by it)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print signature.json as JSON")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show tracebacks")] = False,
):
    """Verify BUNDLE and (re)write its signature.json: Ed25519 over the exact manifest.json bytes."""
    from edgepack_runtime.signing import sign_bundle
    doc = sign_bundle(bundle, key, signer=signer)
    if json_out:
        print_json({"bundle": str(bundle), "signature": doc})
        return
    who = f" ({escape(doc['signer'])})" if doc.get("signer") else ""
    out_console.print(f"[bold green]signed[/] {escape(str(bundle))} with key {doc['key_id']}{who}")
