"""A FUSE passthrough filesystem that fails fsync on demand (run by common::disk::FaultFs).

  faultfs.py BACKING MOUNTPOINT FLAG

Every operation goes to BACKING. While the file FLAG exists, fsync and fdatasync of a file
whose name contains the text in FLAG (e.g. "journal-") fail with EIO, as a disk that cannot
write does (the kernel reports the error once; tandem must never retry or acknowledge).
Needs Debian's python3-fusepy (run with /usr/bin/python3). Foreground; unmounted by the
test (umount) or on SIGTERM.
"""

import errno
import os
import sys

from fusepy import FUSE, FuseOSError, Operations


class FaultFs(Operations):
    def __init__(self, root, flag):
        self.root = root
        self.flag = flag

    def _full(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _failing(self, path):
        try:
            with open(self.flag) as f:
                pattern = f.read().strip()
        except FileNotFoundError:
            return False
        return pattern in os.path.basename(path)

    # Files and directories.

    def access(self, path, mode):
        if not os.access(self._full(path), mode):
            raise FuseOSError(errno.EACCES)

    def chmod(self, path, mode):
        return os.chmod(self._full(path), mode)

    def chown(self, path, uid, gid):
        return os.chown(self._full(path), uid, gid)

    def getattr(self, path, fh=None):
        st = os.lstat(self._full(path))
        keys = ("st_atime", "st_ctime", "st_gid", "st_mode", "st_mtime", "st_nlink", "st_size", "st_uid")
        return {k: getattr(st, k) for k in keys}

    def readdir(self, path, fh):
        return [".", ".."] + os.listdir(self._full(path))

    def mknod(self, path, mode, dev):
        # tandemd's admin socket (bind of a Unix socket).
        return os.mknod(self._full(path), mode, dev)

    def mkdir(self, path, mode):
        return os.mkdir(self._full(path), mode)

    def rmdir(self, path):
        return os.rmdir(self._full(path))

    def statfs(self, path):
        st = os.statvfs(self._full(path))
        keys = ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree", "f_files", "f_flag", "f_frsize", "f_namemax")
        return {k: getattr(st, k) for k in keys}

    def unlink(self, path):
        return os.unlink(self._full(path))

    def rename(self, old, new):
        return os.rename(self._full(old), self._full(new))

    def utimens(self, path, times=None):
        return os.utime(self._full(path), times)

    # File contents.

    def open(self, path, flags):
        return os.open(self._full(path), flags)

    def create(self, path, mode, fi=None):
        return os.open(self._full(path), os.O_RDWR | os.O_CREAT, mode)

    def read(self, path, length, offset, fh):
        return os.pread(fh, length, offset)

    def write(self, path, buf, offset, fh):
        return os.pwrite(fh, buf, offset)

    def truncate(self, path, length, fh=None):
        with open(self._full(path), "r+") as f:
            f.truncate(length)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return os.close(fh)

    def fsync(self, path, datasync, fh):
        if self._failing(path):
            raise FuseOSError(errno.EIO)
        if datasync:
            return os.fdatasync(fh)
        return os.fsync(fh)


def main():
    backing, mountpoint, flag = sys.argv[1:4]
    FUSE(FaultFs(backing, flag), mountpoint, foreground=True, nothreads=True)


if __name__ == "__main__":
    main()
