// repair_test.cc -- being written
