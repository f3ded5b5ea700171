"""Cases where eager placement (first scan) differs from the plain resolve pass."""

from __future__ import annotations

from pathlib import Path

from test_scan import file, folder, root
from test_scan_eager import scan_both


def test_file_flagged_as_malware_on_a_later_listing(tmp_path: Path) -> None:
    pages = [
        [root(), folder("P", "Photos"), file("F", "a.jpg", "P")],
        [file("F", "a.jpg", "P", malware={})],  # listed again, now flagged, same name/parent
    ]
    runs = scan_both(tmp_path, pages)
    assert runs[True] == runs[False]


def test_folder_listed_again_as_the_vault(tmp_path: Path) -> None:
    pages = [
        [root(), folder("V", "Vault"), file("F", "a.jpg", "V")],
        [folder("V", "Vault", specialFolder={"name": "vault"})],
    ]
    runs = scan_both(tmp_path, pages)
    assert runs[True] == runs[False]


def test_reserved_top_name_against_a_name_placed_at_ingest(tmp_path: Path) -> None:
    # ".versions" is reserved at the top: the plain pass gives it ".versions (2)" and then
    # the file really named ".versions (2)" gets ".versions (2) (2)". Eager placement has
    # already given ".versions (2)" to the latter, and unsettled_parents does not see the
    # collision (the reserved name is not among the keys).
    pages = [[root(), file("B", ".versions (2)"), file("A", ".versions")]]
    runs = scan_both(tmp_path, pages)
    assert runs[True] == runs[False]


def test_item_placed_at_ingest_then_moved_under_a_parent_never_listed(tmp_path: Path) -> None:
    # Plain: F is an orphan (never placed: no paths, not selected, not downloaded).
    # Eager: F keeps the paths of its first listing and selected = 1, so it stays a pending,
    # selected file with local_path "f.jpg" although it is no longer there on the drive.
    pages = [[root(), file("F", "f.jpg")], [file("F", "f.jpg", "GHOST")]]
    runs = scan_both(tmp_path, pages)
    assert runs[True] == runs[False]
