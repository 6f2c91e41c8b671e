"""Review commands: ``hash-password`` (a secrets.toml account), ``review-export`` (the audit trail as CSV)
and ``archive-export`` (the reviewed-cell archive as a folder of class folders)."""
from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from bloodcell_core.cli_args import REVIEW_DATABASE, add_command
from bloodcell_core.errors import BloodcellError
from bloodcell_core.review.auth import ROLES, hash_password, load_accounts
from bloodcell_core.review.store import ACTIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    hasher = add_command(
        subparsers, "hash-password", run_hash_password,
        help="make a bcrypt password hash and a reviewer account for .streamlit/secrets.toml",
        description="Reads a password (twice, not echoed), prints its salted bcrypt hash and a "
                    "[reviewers.<username>] section to paste into .streamlit/secrets.toml.")
    hasher.add_argument("--username", default="reviewer", help="account name in the snippet (default: reviewer)")
    hasher.add_argument("--display-name", help="name shown in the app (default: the username)")
    hasher.add_argument("--role", choices=ROLES, default="reviewer", help="reviewer (records) or viewer (views)")
    hasher.add_argument("--stdin", action="store_true", help="read the password from the first line of stdin")

    exporter = add_command(
        subparsers, "review-export", run_review_export, help="export the review decisions (audit trail) as CSV",
        description=f"Writes every decision, newest first, from the review database ({REVIEW_DATABASE}).")
    exporter.add_argument("--out", type=Path, help="CSV file to write (default: stdout)")
    exporter.add_argument("--reviewer", help="only this reviewer's decisions")
    exporter.add_argument("--action", choices=ACTIONS, help="only this action")
    exporter.add_argument("--dataset", help="only this dataset")
    exporter.add_argument("--since", type=_utc_datetime, help="only decisions at or after this ISO time (UTC if no zone)")

    archive = add_command(
        subparsers, "archive-export", run_archive_export,
        help="export the reviewed-cell archive as a folder of class folders (input for adapt)",
        description="Writes every archived cell (accepted or corrected on Classify) as OUT/<class>/<sha256>.png, "
                    f"labelled by its latest decision, from the review database ({REVIEW_DATABASE}).")
    archive.add_argument("--out", type=Path, required=True, help="folder to write (new or empty)")
    archive.add_argument("--source", help="only cells archived under this laboratory/source name")


def _utc_datetime(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date/time: {text!r}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise BloodcellError("the passwords differ")
    return password


def account_snippet(username: str, display_name: str, password_hash: str, role: str) -> str:
    """A ``[reviewers.<username>]`` TOML section (JSON strings are valid TOML basic strings)."""
    lines = [f"[reviewers.{json.dumps(username)}]",
             f"display_name = {json.dumps(display_name)}",
             f"password_hash = {json.dumps(password_hash)}",
             f"role = {json.dumps(role)}"]
    return "\n".join(lines) + "\n"


def run_hash_password(args: argparse.Namespace) -> int:
    password_hash = hash_password(_read_password(args.stdin))
    display_name = args.display_name or args.username
    snippet = account_snippet(args.username, display_name, password_hash, args.role)
    import tomllib

    load_accounts(tomllib.loads(snippet))  # refuses a username the app would refuse
    print(password_hash)
    print("\n# add to .streamlit/secrets.toml:")
    print(snippet, end="")
    return 0


def run_review_export(args: argparse.Namespace) -> int:
    from bloodcell_core.outputs import frame_csv, output_file, write_text
    from bloodcell_core.review.store import ReviewStore

    if args.out is not None:
        output_file(args.out)
    with ReviewStore() as store:
        history = store.history(reviewer=args.reviewer, action=args.action, dataset=args.dataset, since=args.since)
        where = store.where
    csv_text = frame_csv(history)
    if args.out is None:
        sys.stdout.write(csv_text)
        return 0
    write_text(args.out, csv_text)
    print(f"wrote {len(history)} decisions from {where} to {args.out}", file=sys.stderr)
    return 0


def run_archive_export(args: argparse.Namespace) -> int:
    from bloodcell_core.review.archive import export_archive
    from bloodcell_core.review.store import ReviewStore

    with ReviewStore() as store:
        counts = export_archive(store, args.out, source=args.source)
        where = store.where
    per_class = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
    print(f"wrote {sum(counts.values())} archived cells ({per_class}) from {where} to {args.out}", file=sys.stderr)
    return 0
