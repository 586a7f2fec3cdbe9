package mirror

import "github.com/stellaops/stella/internal/canon"

func canonFast(v any) ([]byte, error) { return canon.Fast(v) }
