# Tarball mode: the golden image extracted into the fresh target filesystems, through verified_write
# (15-fetch.sh): nothing of it counts before its digest matched.

tar_extract() {
  # --numeric-owner: the installer environment's user names mean nothing in the image.
  # --xattrs/--acls: file capabilities (ping), ACLs; --preserve-permissions: modes as packed.
  tar --extract --file=- --directory="${PC_TARGET}" --numeric-owner --preserve-permissions \
    --xattrs --xattrs-include='*' --acls
}

# Empties the target filesystems after a broken stream (mkfs is faster than deleting a half tree).
refresh_filesystems() {
  cleanup_target
  make_filesystems
  mount_target
}

install_image() {
  log "image ${PC_IMAGE_URL} (${PC_IMAGE_SIZE} bytes, sha256 ${PC_IMAGE_SHA256})"
  step verified_write 'golden image' 'the target filesystems' "${PC_IMAGE_URL}" "${PC_IMAGE_SHA256}" "${PC_IMAGE_SIZE}" \
    wipe_filesystems refresh_filesystems tar_extract
  log "image verified and extracted"
}
