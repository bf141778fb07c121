"""The `engram` command: health, store, recall, API keys and webhooks against a running service;
export and import of a namespace; backup and restore of an embedded data directory, on the
machine that holds it; and `engram mcp`, the MCP tools over stdio. Answers print as tables
for people; `--json` prints the service's JSON for scripts. Progress goes to stderr."""
from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engram import backup, tables, transfer
from engram._transport import DEFAULT_URL
from engram.client import Engram
from engram.errors import EngramError


def _connection(defaults: bool) -> argparse.ArgumentParser:
    """--url and --api-key, taken before the command or after it (`engram mcp --url …`)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--url", default=os.environ.get("ENGRAM_URL", DEFAULT_URL) if defaults else argparse.SUPPRESS,
                   help=f"service URL (default: $ENGRAM_URL or {DEFAULT_URL})")
    p.add_argument("--api-key", default=None if defaults else argparse.SUPPRESS,
                   help="default: $ENGRAM_API_KEY, then $ENGRAM_ROOT_API_KEY")
    p.add_argument("--json", action="store_true", default=False if defaults else argparse.SUPPRESS,
                   help="print the answer as JSON (for scripts) instead of a table")
    return p


LIMITS = {"requests_per_second": float, "burst": int, "memories_per_namespace": int, "stored_bytes": int}


def _limit_options(p: argparse.ArgumentParser) -> None:
    for name, kind in LIMITS.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind,
                       help="a limit of the key (429 past it)")


def _limits(args: argparse.Namespace) -> dict[str, Any] | None:
    given = {name: getattr(args, name) for name in LIMITS if getattr(args, name) is not None}
    return given or None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engram", description=__doc__, parents=[_connection(True)])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[_connection(False)], **kw)

    mcp = command("mcp", help="serve Engram's MCP tools over stdio (for an agent to start)")
    mcp.add_argument("--namespace", "-n", help="the namespace tools use when a call names none")
    command("health", help="is the service up")
    store = command("store", help="store one memory")
    store.add_argument("--namespace", "-n", required=True)
    store.add_argument("--importance", type=float)
    store.add_argument("--type", dest="memory_type",
                       choices=["episodic", "semantic", "procedural", "working"])
    store.add_argument("--tag", dest="tags", action="append", help="repeatable")
    store.add_argument("--session", dest="session_id")
    store.add_argument("text")
    recall = command("recall", help="the memories most relevant to a query")
    recall.add_argument("--namespace", "-n", required=True)
    recall.add_argument("--top-k", type=int, default=5)
    recall.add_argument("query")
    keys = command("keys", help="API keys (needs an admin key)")
    key_sub = keys.add_subparsers(dest="keys_command", required=True)

    def key_command(name: str, **kw: Any) -> argparse.ArgumentParser:
        return key_sub.add_parser(name, parents=[_connection(False)], **kw)

    create = key_command("create", help="a new key (its secret is shown once)")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", default="read",
                        choices=["read", "write", "admin", "super_admin"])
    create.add_argument("--namespace", dest="namespaces", action="append",
                        help="a grant: a name or a prefix ending in '*'; repeatable; none: all")
    create.add_argument("--expires-in-days", type=int)
    _limit_options(create)
    key_command("list", help="the keys this key may see")
    update = key_command("update", help="rename, re-grant or re-limit a key")
    update.add_argument("key_id")
    update.add_argument("--name")
    update.add_argument("--namespace", dest="namespaces", action="append",
                        help="the key's grants, all of them (replaces the ones it has); repeatable")
    _limit_options(update)
    delete = key_command("delete", help="revoke a key")
    delete.add_argument("key_id")
    hooks = command("webhooks", help="webhook subscriptions of this key")
    hook_sub = hooks.add_subparsers(dest="webhooks_command", required=True)

    def hook_command(name: str, **kw: Any) -> argparse.ArgumentParser:
        return hook_sub.add_parser(name, parents=[_connection(False)], **kw)

    subscribe = hook_command("create", help="subscribe a URL (its signing secret is shown once)")
    subscribe.add_argument("--to", dest="hook_url", required=True, metavar="URL",
                           help="where deliveries go (--url names the Engram service)")
    subscribe.add_argument("--namespace", dest="namespaces", action="append", required=True,
                           help="a name or a prefix ending in '*', within the key's grants; repeatable")
    subscribe.add_argument("--event", dest="events", action="append",
                           choices=["memory.stored", "memory.updated", "memory.forgotten", "session.ended",
                                    "namespace.deleted"],
                           help="repeatable; none: all five")
    subscribe.add_argument("--description")
    hook_command("list", help="this key's subscriptions")
    unsubscribe = hook_command("delete", help="unsubscribe")
    unsubscribe.add_argument("webhook_id")
    sent = hook_command("deliveries", help="a subscription's recent deliveries")
    sent.add_argument("webhook_id")
    sent.add_argument("--limit", type=int, default=50)
    export = command("export", help="a namespace as JSON lines (needs an admin key)")
    export.add_argument("--namespace", "-n", required=True)
    export.add_argument("--out", type=Path, required=True)
    load = command("import", help="a namespace from `engram export` (under its name, "
                                         "which the service must not hold)")
    load.add_argument("file", type=Path)
    take = command("backup", help="snapshot an embedded data directory while it serves")
    take.add_argument("--data-dir", type=Path, default=Path("data"), help="default: %(default)s")
    take.add_argument("--out", type=Path, required=True, help="the .tar.gz to write")
    put = command("restore", help="unpack a backup into a new data directory")
    put.add_argument("--data-dir", type=Path, required=True, help="empty or missing")
    put.add_argument("archive", type=Path)
    return p


LOCAL = {"backup", "restore"}  # commands on the data directory itself, not the service


def _run_local(args: argparse.Namespace) -> Any:
    if args.command == "backup":
        return backup.backup(args.data_dir, args.out)
    return backup.restore(args.archive, args.data_dir)


def _run(client: Engram, args: argparse.Namespace) -> Any:
    if args.command == "health":
        return client.health()
    if args.command == "store":
        return client.memory.store(args.text, args.namespace, importance=args.importance,
                                   memory_type=args.memory_type, tags=args.tags,
                                   session_id=args.session_id)
    if args.command == "recall":
        return client.memory.recall(args.query, args.namespace, top_k=args.top_k)
    if args.command == "export":
        return transfer.export_namespace(client, args.namespace, args.out)
    if args.command == "import":
        return transfer.import_namespace(client, args.file)
    if args.command == "webhooks":
        return _run_webhooks(client, args)
    if args.keys_command == "create":
        return client.keys.create(args.name, args.scope, args.namespaces, args.expires_in_days,
                                  _limits(args))
    if args.keys_command == "list":
        return client.keys.list()
    if args.keys_command == "update":
        return client.keys.update(args.key_id, name=args.name, namespaces=args.namespaces,
                                  limits=_limits(args))
    return client.keys.delete(args.key_id)


def _run_webhooks(client: Engram, args: argparse.Namespace) -> Any:
    if args.webhooks_command == "create":
        return client.webhooks.create(args.hook_url, args.namespaces, args.events, args.description)
    if args.webhooks_command == "list":
        return client.webhooks.list()
    if args.webhooks_command == "deliveries":
        return client.webhooks.deliveries(args.webhook_id, args.limit)
    return client.webhooks.delete(args.webhook_id)


def _for_people(args: argparse.Namespace, result: Any) -> str:
    if args.command == "recall":
        return tables.recall(result)
    if args.command == "store":
        return tables.stored(result)
    if args.command == "keys" and args.keys_command == "list":
        return tables.keys(result)
    if args.command == "keys" and args.keys_command == "create":
        return tables.created_key(result)
    if args.command == "webhooks" and args.webhooks_command == "list":
        return tables.webhooks(result)
    if args.command == "webhooks" and args.webhooks_command == "create":
        return tables.created_webhook(result)
    return tables.summary(result)


def _serve_mcp(args: argparse.Namespace) -> int:
    try:
        from engram.mcp import run_stdio
    except ImportError as exc:
        print(f"engram mcp needs the MCP SDK ({exc}): pip install 'engram[mcp]'", file=sys.stderr)
        return 1
    import asyncio

    asyncio.run(run_stdio(args.url, args.api_key, args.namespace))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "mcp":
        return _serve_mcp(args)
    try:
        if args.command in LOCAL:
            result = _run_local(args)
        else:
            with Engram(args.url, api_key=args.api_key) as client:
                result = _run(client, args)
    except EngramError as exc:
        print(f"engram: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError, sqlite3.Error, tarfile.TarError) as exc:  # a file, a directory
        print(f"engram {args.command}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        json.dump(result, sys.stdout, indent=2, ensure_ascii=False)
    else:
        sys.stdout.write(_for_people(args, result))
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
