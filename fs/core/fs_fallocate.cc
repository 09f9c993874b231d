// fs_fallocate.cc -- being written
