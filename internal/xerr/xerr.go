// Package xerr holds the ERR_EXPORT_* error codes of the product contract
// (SPEC §10) and maps them, in one place, to CLI exit codes and HTTP statuses.
package xerr

import (
	"errors"
	"fmt"
	"net/http"
	"syscall"
)

// Code is an ERR_EXPORT_* code.
type Code string

// The error codes of SPEC §10.
const (
	InvalidInput      Code = "ERR_EXPORT_INVALID_INPUT"
	ProfileNotFound   Code = "ERR_EXPORT_PROFILE_NOT_FOUND"
	RunNotFound       Code = "ERR_EXPORT_RUN_NOT_FOUND"
	Empty             Code = "ERR_EXPORT_EMPTY"
	UnsupportedSchema Code = "ERR_EXPORT_UNSUPPORTED_SCHEMA"
	BaseMissing       Code = "ERR_EXPORT_BASE_MISSING"
	Signing           Code = "ERR_EXPORT_SIGNING"
	Distribution      Code = "ERR_EXPORT_DISTRIBUTION"
	Verify            Code = "ERR_EXPORT_VERIFY"
	Quota             Code = "ERR_EXPORT_QUOTA"
	Unauthorized      Code = "ERR_EXPORT_UNAUTHORIZED"
	Offline           Code = "ERR_EXPORT_OFFLINE"
	Internal          Code = "ERR_EXPORT_INTERNAL"
)

type codeInfo struct {
	label string // the errorCode label stored on runs and in metrics
	http  int
	exit  int
}

var table = map[Code]codeInfo{
	InvalidInput:      {"validation", http.StatusBadRequest, 2},
	ProfileNotFound:   {"validation", http.StatusNotFound, 4},
	RunNotFound:       {"validation", http.StatusNotFound, 4},
	Empty:             {"validation", http.StatusUnprocessableEntity, 2},
	UnsupportedSchema: {"adapter", http.StatusUnprocessableEntity, 2},
	BaseMissing:       {"base", http.StatusConflict, 2},
	Signing:           {"signing", http.StatusServiceUnavailable, 10},
	Distribution:      {"distribution", http.StatusBadGateway, 10},
	Verify:            {"verify", http.StatusUnprocessableEntity, 3},
	Quota:             {"quota", http.StatusTooManyRequests, 6},
	Unauthorized:      {"auth", http.StatusUnauthorized, 3},
	Offline:           {"offline", http.StatusConflict, 5},
	Internal:          {"internal", http.StatusInternalServerError, 1},
}

// Codes lists every code, in the order of SPEC §10.
func Codes() []Code {
	return []Code{InvalidInput, ProfileNotFound, RunNotFound, Empty, UnsupportedSchema, BaseMissing,
		Signing, Distribution, Verify, Quota, Unauthorized, Offline, Internal}
}

// Label is the short errorCode label of a code ("validation", "signing", ...).
func (c Code) Label() string { return info(c).label }

// HTTPStatus is the HTTP status the API answers with for a code.
func (c Code) HTTPStatus() int { return info(c).http }

// ExitCode is the process exit code the CLI ends with for a code.
func (c Code) ExitCode() int { return info(c).exit }

func info(c Code) codeInfo {
	if i, ok := table[c]; ok {
		return i
	}
	return table[Internal]
}

// Error is an error with a contract code, a message that says what was wrong,
// and a hint that says what to do.
type Error struct {
	Code    Code
	Message string   // what was wrong (names the file, field or flag)
	Hint    string   // what to do about it
	Details []string // optional extra lines (e.g. one per bad document)
	Err     error    // wrapped cause, if any
	// Reported means the details were already printed (e.g. a failed run's
	// summary); the CLI then prints only the one-line error.
	Reported bool
}

func (e *Error) Error() string {
	s := string(e.Code) + ": " + e.Message
	if e.Err != nil && e.Message == "" {
		s += e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// New makes an error with a code and a formatted message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap makes an error with a code around a cause; the message includes the cause.
func Wrap(code Code, err error, format string, args ...any) *Error {
	msg := fmt.Sprintf(format, args...)
	if err != nil {
		msg += ": " + err.Error()
	}
	return &Error{Code: code, Message: msg, Err: err}
}

// WithHint sets the hint and returns the error.
func (e *Error) WithHint(format string, args ...any) *Error {
	e.Hint = fmt.Sprintf(format, args...)
	return e
}

// CodeOf finds the contract code of err; errors without one are Internal.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}

// As returns the *Error in err's chain, or an Internal *Error wrapping err.
// An error of a full disk or quota says so in its hint.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e.Hint == "" && e.Code == Internal && noSpace(err) {
			c := *e
			c.Hint = noSpaceHint
			return &c
		}
		return e
	}
	hint := "this is a bug or an environment problem; rerun with --trace and report the output"
	if noSpace(err) {
		hint = noSpaceHint
	}
	return &Error{Code: Internal, Message: err.Error(), Err: err, Hint: hint}
}

const noSpaceHint = "the file system of the path above is full (or its quota reached): free space there, " +
	"or give the data directory (--data-dir) or the target a larger one; a build's external sort spills about " +
	"1.5 KB per record to runs/<runId>/.work on a disk with less than 10 GiB free (4 KB above that)"

func noSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// Is reports whether err carries the given code.
func Is(err error, code Code) bool { return err != nil && CodeOf(err) == code }
