"""``cd4ml-console login BACKEND``: store a backend's token or password without echoing it.

Only click is imported at module level (``--help`` must stay fast). The secret goes straight
from the prompt into a ``SecretStr`` and from there into the keyring or the 0600 file.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

import click


def register(cli: click.Group) -> None:
    """Add the ``login`` command to the ``cd4ml-console`` group."""
    cli.add_command(login)


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(message, err=True)
    raise SystemExit(code)


def _resolve(ctx: click.Context, backend: str) -> tuple[str, Any, str]:
    """(credential name, CredentialOptions, where the options came from) for ``backend``.

    ``backend`` is a credential name, a plugin type or a backend kind of the config; without
    a config (or a match) the defaults apply and ``backend`` is the credential name.
    """
    from console.config import ConfigError, NoWorkspace, config_label, load_config
    from console.plugins import discover
    from console.plugins.credentials import CredentialOptions, credential_name
    from console.services.workspace import validate_backend_options

    state = ctx.find_root().obj
    try:
        config = load_config(getattr(state, "config_file", None), getattr(state, "workspace", None))
    except NoWorkspace:
        return backend, CredentialOptions(), "defaults (no config found)"
    except ConfigError as exc:
        _fail(str(exc), 2)
    try:
        options = validate_backend_options(config, discover())
    except ConfigError as exc:
        _fail(str(exc), 2)
    for kind, opts in options.items():
        if not isinstance(opts, CredentialOptions):
            continue
        btype = config.backends[kind].type if kind in config.backends else ""
        name = credential_name(opts, btype or kind)
        if backend in (name, kind, btype):
            return name, opts, f"[backends.{kind}] of {config_label(config)}"
    return backend, CredentialOptions(), f"defaults (no backend {backend!r} in the config)"


@click.command()
@click.argument("backend")
@click.option(
    "--file",
    "to_file",
    is_flag=True,
    help="Store in the credentials file (mode 0600) instead of the keyring.",
)
@click.option("--username", help="With --file: also store this user name (basic auth).")
@click.option(
    "--stdin", "from_stdin", is_flag=True, help="Read the secret from standard input (scripts)."
)
@click.pass_context
def login(
    ctx: click.Context, backend: str, to_file: bool, username: str | None, from_stdin: bool
) -> None:
    """Store the token (or password) for BACKEND in the keyring, or with --file in a 0600 file.

    BACKEND is the backend's credential name (default: its plugin name, e.g. mlflow) or its
    kind (registry, ci, ...). The secret is prompted for and never echoed.
    """
    from pydantic import SecretStr

    from console.plugins.credentials import (
        CredentialError,
        default_credentials_file,
        keyring_status,
        store_in_file,
        store_in_keyring,
    )

    name, opts, origin = _resolve(ctx, backend)
    path = opts.credentials_file or default_credentials_file()
    if username and not to_file:
        _fail("--username is stored only with --file; for the keyring set username in the config")
    if not to_file:
        status = keyring_status(opts.allow_plaintext_keyring)
        if not opts.use_keyring or not status.usable:
            why = "use_keyring = false" if not opts.use_keyring else status.reason
            env = (
                f"  export {opts.token_env}=...   (e.g. in your shell profile; never in the TOML)\n"
                if opts.token_env
                else "  set token_env in the backend's config and export that variable\n"
            )
            _fail(
                f"can not store {name!r} in a keyring: {why}.\nInstead, either\n{env}"
                f"or store it in {path} (mode 0600):\n  cd4ml-console login {backend} --file"
            )
    click.echo(f"credential {name!r} (options from {origin})", err=True)
    if from_stdin:
        secret = SecretStr(sys.stdin.readline().rstrip("\r\n"))
    else:
        secret = click.prompt(
            f"Token or password for {name}", hide_input=True, value_proc=SecretStr, err=True
        )
    if not secret.get_secret_value():
        _fail("empty secret: nothing stored")
    try:
        if to_file:
            store_in_file(name, secret, path, username=username)
            click.echo(f"stored credential {name!r} in {path} (mode 0600)")
        else:
            where = store_in_keyring(name, secret, opts)
            click.echo(f"stored credential {name!r} in keyring {where} (service cd4ml-console)")
    except CredentialError as exc:
        _fail(str(exc))


__all__ = ["login", "register"]
