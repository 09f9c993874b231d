// fs_xattr.cc -- being written
