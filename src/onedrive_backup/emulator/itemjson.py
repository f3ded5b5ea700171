"""driveItem JSON as Graph shapes it (full items, delta items and delta tombstones)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from onedrive_backup.emulator.drive import MALWARE, PACKAGE, Drive, Item, iso
from onedrive_backup.emulator.links import mint_link
from onedrive_backup.emulator.names import mime_type
from onedrive_backup.emulator.state import State


def iso_ms(ts: int, salt: int) -> str:
    """Server timestamps carry fractions of a second, as Graph's often do."""
    stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{salt % 997:03d}Z"


def _parent_ref(st: State, item: Item, with_path: bool, drive: Drive) -> dict[str, Any]:
    ref: dict[str, Any] = {"driveId": drive.id, "driveType": drive.drive_type}
    parent = item.parent
    if parent is None:
        return ref
    ref["id"] = drive.item_id(parent)
    if with_path:
        own = drive is st.drive and drive.drive_type == "personal"
        prefix = "/drive/root:" if own else f"/drives/{drive.id}/root:"
        parent_path = drive.path_of(parent)
        ref["path"] = prefix if parent_path == "/" else prefix + parent_path
    return ref


def render(
    st: State, item: Item, *, delta: bool = False, drive: Drive | None = None
) -> dict[str, Any]:
    """One item of `drive` (the user's by default); the caller holds drive.lock and has
    computed the hashes."""
    drive = drive or st.drive
    if item.deleted:
        return _tombstone(st, item, drive)
    name = st.spec.user_name if drive is st.drive else drive.owner_name
    user = {"user": {"displayName": name, "id": drive.id.lower()[-16:]}}
    out: dict[str, Any] = {
        "id": drive.item_id(item),
        "name": item.name if item.parent is not None else "root",
        "size": item.size,
        "eTag": drive.etag(item),
        "cTag": drive.ctag(item),
        "createdDateTime": iso_ms(item.ctime, item.num),
        "lastModifiedDateTime": iso_ms(item.smtime, item.num + item.mver),
        "webUrl": f"https://onedrive.live.com/?id={drive.item_id(item)}",
        "createdBy": user,
        "lastModifiedBy": user,
        "parentReference": _parent_ref(st, item, with_path=not delta, drive=drive),
        "fileSystemInfo": {
            "createdDateTime": iso(item.ctime),
            "lastModifiedDateTime": iso(item.mtime),
        },
    }
    shortcut = drive.shortcuts.get(item.num)
    if shortcut is not None:  # no file/folder facet of its own: remoteItem describes it
        out["remoteItem"] = _remote_item(*shortcut)
        out["size"] = out["remoteItem"]["size"]
    elif item.parent is None:
        out["root"] = {}
        out["folder"] = {"childCount": len(item.children or [])}
    elif item.flags & PACKAGE:
        out["package"] = {"type": "oneNote"}
        if drive.drive_type == "business":  # ODB notebooks carry both facets
            out["folder"] = {"childCount": len(item.children or [])}
    elif item.children is not None:
        out["folder"] = {"childCount": len(item.children), "view": {"viewType": "thumbnails"}}
    else:
        facet: dict[str, Any] = {"mimeType": mime_type(item.name)}
        if item.num in drive.sha256_only:
            facet["hashes"] = {"sha256Hash": drive.sha256_only[item.num]}
        elif item.size and item.qxh is not None:  # no hashes on zero-byte files
            facet["hashes"] = {"quickXorHash": item.qxh}
        out["file"] = facet
        out["@microsoft.graph.downloadUrl"] = mint_link(st, item.num, st.drives.index(drive))
    if item.flags & MALWARE:
        out["malware"] = {"description": "Emulated malware detection"}
    return out


def _remote_item(drive: Drive, target: Item) -> dict[str, Any]:
    """The remoteItem facet of a shortcut: the target's id, name, size and drive."""
    owner = {"user": {"displayName": drive.owner_name, "id": drive.id.lower()[-16:]}}
    out: dict[str, Any] = {
        "id": drive.item_id(target),
        "name": target.name,
        "size": target.size,
        "parentReference": {"driveId": drive.id, "driveType": drive.drive_type},
        "fileSystemInfo": {
            "createdDateTime": iso(target.ctime),
            "lastModifiedDateTime": iso(target.mtime),
        },
        "shared": {"owner": owner, "sharedDateTime": iso(target.ctime)},
        "webUrl": f"https://onedrive.live.com/?id={drive.item_id(target)}",
    }
    if target.is_folder:
        out["folder"] = {"childCount": len(target.children or [])}
    else:
        out["file"] = {"mimeType": mime_type(target.name)}
    return out


def _tombstone(st: State, item: Item, drive: Drive) -> dict[str, Any]:
    """What delta says about a deleted item: little more than id, parent and `deleted`."""
    out: dict[str, Any] = {
        "id": drive.item_id(item),
        "deleted": {},
        "parentReference": _parent_ref(st, item, with_path=False, drive=drive),
    }
    if drive.drive_type == "personal":  # ODB leaves the name out as well
        out["name"] = item.name
        out["lastModifiedDateTime"] = iso_ms(item.smtime, item.num)
    if item.children is not None:
        out["folder"] = {"childCount": 0}
    else:
        out["file"] = {}
    return out


def select(body: dict[str, Any], fields: set[str] | None) -> dict[str, Any]:
    """Apply $select; id and the deleted facet always stay (clients key on them)."""
    if not fields:
        return body
    keep = fields | {"id", "deleted", "@odata.type"}
    return {k: v for k, v in body.items() if k in keep}
