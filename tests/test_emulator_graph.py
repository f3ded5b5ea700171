"""The emulator's Graph drive API, over real HTTPS with plain httpx."""

from __future__ import annotations

from urllib.parse import quote

from emulator_fixtures import EmulatorFactory, delta_round, graph_client
from onedrive_backup.emulator import DriveSpec, Emulator


def test_drive_and_root(emulator: Emulator) -> None:
    with graph_client(emulator) as c:
        drive = c.get("/me/drive").json()
        assert drive["driveType"] == "personal" and drive["quota"]["used"] > 0
        assert c.get(f"/drives/{drive['id']}").json()["id"] == drive["id"]
        root = c.get("/me/drive/root").json()
        assert root["root"] == {} and root["folder"]["childCount"] > 0
        assert c.get(f"/drives/{drive['id']}/items/{root['id']}").json()["id"] == root["id"]


def test_path_addressing_and_children_paging(emulator: Emulator) -> None:
    f = next(f for f in emulator.drive.iter_files() if f.path.count("/") >= 3)
    folder, _, name = f.path.rpartition("/")
    with graph_client(emulator) as c:
        by_path = c.get(f"/me/drive/root:{quote(f.path)}:").json()
        assert by_path["id"] == f.id and by_path["file"]["hashes"]["quickXorHash"] == f.quickxorhash
        assert by_path["parentReference"]["path"] == "/drive/root:" + folder
        parent_id = by_path["parentReference"]["id"]
        rel = c.get(f"/me/drive/items/{parent_id}:/{quote(name)}:").json()
        assert rel["id"] == f.id
        names: list[str] = []
        url = f"/me/drive/root:{quote(folder.rsplit('/', 1)[0] or '/')}:/children"
        resp = c.get("/me/drive/root/children", params={"$top": "2"}).json()
        assert "@odata.nextLink" in resp and "$skiptoken" in resp["@odata.nextLink"]
        while True:
            names += [i["name"] for i in resp["value"]]
            if "@odata.nextLink" not in resp:
                break
            resp = c.get(resp["@odata.nextLink"]).json()
        root_kids = emulator.drive.find("/")
        assert root_kids is not None and sorted(names) == sorted(
            k.name for k in root_kids.children or []
        )
        assert c.get(url).status_code == 200
        assert c.get("/me/drive/root:/no/such/thing:").json()["error"]["code"] == "itemNotFound"


def test_select_keeps_only_selected_fields(emulator: Emulator) -> None:
    with graph_client(emulator) as c:
        body = c.get("/me/drive/root/delta", params={"$select": "id,name,size"}).json()
        assert all(set(i) <= {"id", "name", "size"} for i in body["value"])


def test_full_delta_across_pages_matches_drive(emulator: Emulator) -> None:
    with graph_client(emulator) as c:
        items, link = delta_round(c, "/me/drive/root/delta", top=7)
    ids = [i["id"] for i in items]
    assert len(ids) == len(set(ids))
    expected = {v.id for v in emulator.drive.iter_items()} | {
        emulator.drive.item_id(emulator.drive.root)
    }
    assert set(ids) == expected
    assert all("path" not in i["parentReference"] for i in items)
    position = {i["id"]: n for n, i in enumerate(items)}
    parents_after_child = [
        i
        for i in items
        if "id" in i["parentReference"] and position[i["parentReference"]["id"]] > position[i["id"]]
    ]
    assert parents_after_child, "Graph sometimes lists a child before its parent"
    zero = [i for i in items if i.get("size") == 0 and "file" in i]
    assert zero and all("hashes" not in i["file"] for i in zero)
    assert "token=" in link


def test_delta_reports_changes(emulator: Emulator) -> None:
    drive = emulator.drive
    with graph_client(emulator) as c:
        _, link = delta_round(c, "/me/drive/root/delta")
        files = list(drive.iter_files())
        added = drive.add_file("/New Folder/new.txt", size=10)
        modified = drive.modify_file(files[0].id, size=77)
        drive.delete(files[1].id)
        drive.rename(files[2].id, "renamed.bin")
        drive.move(files[3].id, "/Elsewhere")
        items, link2 = delta_round(c, link, top=3)
        by_id = {i["id"]: i for i in items}
        assert by_id[added.id]["name"] == "new.txt"
        assert by_id[modified.id]["size"] == 77
        assert (
            by_id[modified.id]["file"]["hashes"]["quickXorHash"]
            == drive.item_by_id(modified.id).quickxorhash
        )  # type: ignore[union-attr]
        assert by_id[modified.id]["cTag"] != files[0].ctag
        gone = by_id[files[1].id]
        assert "deleted" in gone and "size" not in gone and "cTag" not in gone
        assert by_id[files[2].id]["name"] == "renamed.bin"
        moved_parent = drive.find("/Elsewhere")
        assert moved_parent is not None
        assert by_id[files[3].id]["parentReference"]["id"] == drive.item_id(moved_parent)
        assert drive.item_id(drive.root) in by_id  # ancestors come along
        assert len(items) < 30
        again, _ = delta_round(c, link2)
        assert again == []


def test_token_latest_and_invalidated_token(emulator: Emulator) -> None:
    with graph_client(emulator) as c:
        body = c.get("/me/drive/root/delta", params={"token": "latest"}).json()
        assert body["value"] == [] and "@odata.deltaLink" in body
        emulator.drive.add_file("/after-latest.txt")
        items, _ = delta_round(c, body["@odata.deltaLink"])
        assert "after-latest.txt" in {i.get("name") for i in items}
        emulator.invalidate_delta_tokens()
        gone = c.get(body["@odata.deltaLink"])
        assert gone.status_code == 410 and gone.json()["error"]["code"] == "resyncRequired"
        fresh, _ = delta_round(c, gone.headers["Location"])
        assert len(fresh) > 50
        assert c.get("/me/drive/root/delta", params={"token": "garbage!"}).status_code == 410


def test_delta_token_lifetime(emulator: Emulator) -> None:
    emulator.faults.delta_token_lifetime = 0
    with graph_client(emulator) as c:
        link = c.get("/me/drive/root/delta", params={"token": "latest"}).json()["@odata.deltaLink"]
        import time

        time.sleep(1.1)
        assert c.get(link).status_code == 410


def test_content_redirect_malware_and_notebook(emulator_factory: EmulatorFactory) -> None:
    emu = emulator_factory(DriveSpec(files=30, seed=3, malware_files=1, size_range=(1, 4096)))
    with graph_client(emu) as c:
        f = next(f for f in emu.drive.iter_files() if not f.malware)
        resp = c.get(f"/me/drive/items/{f.id}/content")
        assert resp.status_code == 302 and resp.headers["Location"].startswith(emu.download_origin)
        bad = next(f for f in emu.drive.iter_files() if f.malware)
        meta = c.get(f"/me/drive/items/{bad.id}").json()
        assert "malware" in meta
        resp = c.get(f"/me/drive/items/{bad.id}/content")
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "malwareDetected"
        book = c.get("/me/drive/root:/Documents/My Notebook:").json()
        assert book["package"] == {"type": "oneNote"} and "folder" not in book
        assert c.get(f"/me/drive/items/{book['id']}/content").status_code == 404
        kids = c.get(f"/me/drive/items/{book['id']}/children").json()["value"]
        assert {k["name"].rsplit(".", 1)[1] for k in kids} == {"one", "onetoc2"}
    assert emu.counters.links_issued >= 1


def test_business_drive(emulator_factory: EmulatorFactory) -> None:
    emu = emulator_factory(DriveSpec(files=20, seed=4, drive_type="business"))
    assert emu.authority.endswith("/organizations")
    with graph_client(emu) as c:
        drive = c.get("/me/drive").json()
        assert drive["driveType"] == "business"
        items, _ = delta_round(c, f"/drives/{drive['id']}/root/delta")
        f = next(i for i in items if "file" in i)
        assert c.get(f"/drives/{drive['id']}/items/{f['id']}").json()["name"] == f["name"]
        book = next(i for i in items if "package" in i)
        assert "folder" in book  # ODB notebooks carry both facets


def test_hostile_names_are_served(emulator_factory: EmulatorFactory) -> None:
    emu = emulator_factory(DriveSpec(files=40, seed=5, hostile_names=True))
    with graph_client(emu) as c:
        items, _ = delta_round(c, "/me/drive/root/delta")
    names = {i["name"] for i in items}
    for must in (
        "a/b",
        "..",
        "CON",
        "nul.txt",
        "back\\slash.txt",
        "trailing dot.",
        " leading space.txt",
    ):
        assert must in names
    assert "Café.txt" in names and "Cafe\u0301.txt" in names
    assert "README.md" in names and "readme.MD" in names
    assert any(len(n.encode()) >= 300 for n in names)
    assert any("\x01" in n for n in names)
