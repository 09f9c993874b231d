// fs_repair.cc -- being written
