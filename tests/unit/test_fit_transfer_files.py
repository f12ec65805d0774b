"""The files that carry large fits to the worker process: kept out of a /dev/shm too small
for them, and removed when the ranker that wrote them was killed before it could."""

from __future__ import annotations

import os
import subprocess
import tempfile

from ranker import fit_pool


def test_a_file_larger_than_dev_shm_has_room_for_goes_to_the_temporary_directory() -> None:
    stats = os.statvfs("/dev/shm")
    free = stats.f_bavail * stats.f_frsize
    for nbytes, directory in ((1 << 20, "/dev/shm"), (free + 1, tempfile.gettempdir())):
        fd, path = fit_pool._transfer_file("fit", nbytes)
        os.close(fd)
        try:
            assert os.path.dirname(path) == directory
        finally:
            os.unlink(path)


def test_the_files_of_a_killed_ranker_are_removed_and_those_of_a_live_one_kept() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    # A process that ended, and an earlier process with this one's id (as a restarted
    # container's ranker, process 1 again, sees its predecessor's files).
    pid = os.getpid()
    left = [os.path.join("/dev/shm", f"pairwise-fit-{gone.pid}.1-orphan.bin"),
            os.path.join("/dev/shm", f"pairwise-fit-{pid}.1-earlier.bin")]
    for path in left:
        with open(path, "wb") as file:
            file.write(b"x" * 4096)
    fd, live = fit_pool._transfer_file("counts", 4096)
    os.close(fd)
    try:
        removed = fit_pool.remove_orphans()
        assert all(path in removed and not os.path.exists(path) for path in left)
        assert os.path.exists(live) and live not in removed
    finally:
        for path in (*left, live):
            if os.path.exists(path):
                os.unlink(path)
