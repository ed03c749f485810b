"""What photos and videos say about themselves: EXIF, container tags, frames.

`exif` reads photo metadata, `provenance` merges it with what the user gave and
the file's mtime, `video` samples frames from files, `stream` from live sources,
`frame_filter` drops frames that repeat the last kept one.
"""
