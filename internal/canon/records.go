package canon

import "github.com/stellaops/stella/internal/record"

// Hand-written writers for the normalised records, the bulk of every bundle:
// the same bytes as Fast (encoding/json, keys in declaration order, which is
// sorted), without reflection. Tests compare them with Fast on every fixture
// and under fuzzing; a field added to a record type must be added here (the
// tests fail until it is).

// AppendAdvisory appends the canonical JSON of a.
func AppendAdvisory(dst []byte, a *record.Advisory) []byte {
	dst = appendArray(append(dst, `{"affected":`...), a.Affected, appendAffected)
	dst = appendStrings(append(dst, `,"aliases":`...), a.Aliases)
	if len(a.CWEs) > 0 {
		dst = appendStrings(append(dst, `,"cwes":`...), a.CWEs)
	}
	dst = appendOpt(dst, `,"details":`, a.Details)
	dst = AppendString(append(dst, `,"digest":`...), a.Digest)
	dst = appendStrings(append(dst, `,"ecosystems":`...), a.Ecosystems)
	dst = AppendString(append(dst, `,"id":`...), a.ID)
	dst = appendOpt(dst, `,"modified":`, a.Modified)
	dst = AppendString(append(dst, `,"path":`...), a.Path)
	dst = appendOpt(dst, `,"published":`, a.Published)
	dst = appendStrings(append(dst, `,"references":`...), a.References)
	if len(a.Related) > 0 {
		dst = appendStrings(append(dst, `,"related":`...), a.Related)
	}
	dst = appendSeverities(append(dst, `,"severity":`...), a.Severity)
	dst = AppendString(append(dst, `,"source":`...), a.Source)
	dst = appendOpt(dst, `,"summary":`, a.Summary)
	dst = appendOpt(dst, `,"withdrawn":`, a.Withdrawn)
	return append(dst, '}')
}

func appendAffected(dst []byte, a *record.Affected) []byte {
	dst = AppendString(append(dst, `{"ecosystem":`...), a.Ecosystem)
	dst = appendStrings(append(dst, `,"fixedVersions":`...), a.FixedVersions)
	dst = AppendString(append(dst, `,"package":`...), a.Package)
	dst = appendOpt(dst, `,"purl":`, a.Purl)
	dst = appendArray(append(dst, `,"ranges":`...), a.Ranges, appendRange)
	if len(a.Severity) > 0 {
		dst = appendSeverities(append(dst, `,"severity":`...), a.Severity)
	}
	if len(a.Versions) > 0 {
		dst = appendStrings(append(dst, `,"versions":`...), a.Versions)
	}
	return append(dst, '}')
}

func appendRange(dst []byte, r *record.Range) []byte {
	dst = appendArray(append(dst, `{"events":`...), r.Events, func(dst []byte, e *record.Event) []byte {
		n := len(dst)
		dst = append(dst, '{')
		dst = appendField(dst, n, "fixed", e.Fixed)
		dst = appendField(dst, n, "introduced", e.Introduced)
		dst = appendField(dst, n, "last_affected", e.LastAffected)
		dst = appendField(dst, n, "limit", e.Limit)
		return append(dst, '}')
	})
	dst = appendOpt(dst, `,"repo":`, r.Repo)
	dst = AppendString(append(dst, `,"type":`...), r.Type)
	return append(dst, '}')
}

// appendField appends an omitempty string field of an object that starts
// at dst[open] ('{'), with a comma unless it is the first member.
func appendField(dst []byte, open int, name, v string) []byte {
	if v == "" {
		return dst
	}
	if len(dst) > open+1 {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return AppendString(dst, v)
}

func appendSeverities(dst []byte, list []record.Severity) []byte {
	return appendArray(dst, list, func(dst []byte, s *record.Severity) []byte {
		dst = AppendString(append(dst, `{"score":`...), s.Score)
		dst = AppendString(append(dst, `,"type":`...), s.Type)
		return append(dst, '}')
	})
}

// AppendVEXStatement appends the canonical JSON of s.
func AppendVEXStatement(dst []byte, s *record.VEXStatement) []byte {
	dst = append(dst, '{')
	if len(s.Aliases) > 0 {
		dst = appendStrings(append(dst, `"aliases":`...), s.Aliases)
		dst = append(dst, ',')
	}
	dst = AppendString(append(dst, `"digest":`...), s.Digest)
	dst = AppendString(append(dst, `,"document":`...), s.DocumentID)
	dst = AppendString(append(dst, `,"format":`...), s.Format)
	dst = AppendString(append(dst, `,"id":`...), s.ID)
	dst = appendOpt(dst, `,"justification":`, s.Justification)
	dst = appendOpt(dst, `,"modified":`, s.Modified)
	dst = AppendString(append(dst, `,"path":`...), s.Path)
	dst = AppendString(append(dst, `,"product":`...), s.Product)
	dst = AppendString(append(dst, `,"source":`...), s.Source)
	dst = appendOpt(dst, `,"statement":`, s.Statement)
	dst = AppendString(append(dst, `,"status":`...), s.Status)
	dst = AppendString(append(dst, `,"vulnerability":`...), s.Vulnerability)
	return append(dst, '}')
}

// appendOpt appends `prefix` and v unless v is empty (omitempty).
func appendOpt(dst []byte, prefix, v string) []byte {
	if v == "" {
		return dst
	}
	return AppendString(append(dst, prefix...), v)
}

// appendStrings appends a string array (nil is null, as encoding/json writes it).
func appendStrings(dst []byte, list []string) []byte {
	return appendArray(dst, list, func(dst []byte, s *string) []byte { return AppendString(dst, *s) })
}

// appendArray appends a JSON array of list's elements, each written by elem
// (a nil slice is null, as encoding/json writes it).
func appendArray[T any](dst []byte, list []T, elem func([]byte, *T) []byte) []byte {
	if list == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i := range list {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = elem(dst, &list[i])
	}
	return append(dst, ']')
}
