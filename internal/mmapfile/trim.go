package mmapfile

import "sync/atomic"

// Trimmer bounds how much of a mapping a process keeps resident: look-ups
// in a large mapped file (random, or a sequential scan) would otherwise
// leave every page they touched in the process's resident set, which then
// grows with the file. Every Every ticks it drops the whole mapping from
// the process's page tables (the pages stay in the page cache, and the
// next access maps them again, cheaply). Safe for concurrent use.
type Trimmer struct {
	data  []byte
	every int64
	n     atomic.Int64
}

// NewTrimmer trims data (a whole mapping from Map) every every ticks.
func NewTrimmer(data []byte, every int64) *Trimmer {
	return &Trimmer{data: data, every: max(every, 1)}
}

// Tick counts one access, trimming every Every.
func (t *Trimmer) Tick() {
	if t == nil {
		return
	}
	if t.n.Add(1)%t.every == 0 {
		Trim(t.data)
	}
}

// Now trims the mapping.
func (t *Trimmer) Now() {
	if t != nil {
		Trim(t.data)
	}
}
