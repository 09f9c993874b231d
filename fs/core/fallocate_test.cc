// fallocate_test.cc -- being written
