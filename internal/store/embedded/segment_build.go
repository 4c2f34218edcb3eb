package embedded

// writeMemtableSegment writes m as a segment file in the engine's segment
// directory and returns its path. Every writer of segments (flush, repair,
// merge) goes through it, so the segment format's choices (compression
// state, block size) live behind one call.
func (e *Engine) writeMemtableSegment(m *memtable) (string, error) {
	return writeSegment(e.segDir, m, e.zenc)
}
