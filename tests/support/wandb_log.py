"""Read what a wandb run logged from its transaction log (``run-<id>.wandb``), offline.

wandb >= 0.19 writes the run summary only when a run is synced, and has no Python reader for the
log any more; the file is a LevelDB-style log (32 KiB blocks of checksummed records) after a
7-byte ``:W&B`` header, each record a ``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct

BLOCK = 32 * 1024
HEADER = 7  # ":W&B", 2 magic bytes, version
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str):
    """The Record messages in the file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a wandb transaction log")
    pos, pending = HEADER, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a record header is padding
            pos += left
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        body = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            pending = body
        elif kind == FIRST:
            pending = body
            continue
        elif kind == MIDDLE:
            pending += body
            continue
        elif kind == LAST:
            pending += body
        else:  # zero padding at the end of the file
            break
        rec = pb.Record()
        rec.ParseFromString(pending)
        yield rec


def history(path: str) -> list[dict]:
    """Each logged step's values, keys as logged (JSON-decoded)."""
    out = []
    for rec in records(path):
        if rec.WhichOneof("record_type") == "history":
            out.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
    return out
