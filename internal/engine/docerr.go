package engine

import (
	"errors"

	"github.com/stellaops/stella/internal/evidence"
)

func asDocErr(err error, de **evidence.DocError) bool { return errors.As(err, de) }
