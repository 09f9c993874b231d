// xattr_test.cc -- being written
