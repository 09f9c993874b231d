# install.cmake -- run by `cmake --install` (and CPack): writes the patrol's worker script
# and units for the prefix being installed to. UDAX_SYSTEMD_SRC is set by the install
# code before this script; DESTDIR (CPack's staging directory) is honoured.
set(UDAX_SBINDIR "${CMAKE_INSTALL_PREFIX}/sbin")
set(root "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}")
configure_file("${UDAX_SYSTEMD_SRC}/udaxfs_patrol.in" "${root}/sbin/udaxfs_patrol" @ONLY
               FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                                WORLD_READ WORLD_EXECUTE)
foreach(f udaxfs-patrol@.service udaxfs-patrol-all.service)
  configure_file("${UDAX_SYSTEMD_SRC}/${f}.in" "${root}/lib/systemd/system/${f}" @ONLY)
endforeach()
configure_file("${UDAX_SYSTEMD_SRC}/udaxfs-patrol-all.timer"
               "${root}/lib/systemd/system/udaxfs-patrol-all.timer" COPYONLY)
message(STATUS "Installing: ${root}/sbin/udaxfs_patrol and its units in ${root}/lib/systemd/system")
