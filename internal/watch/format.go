package watch

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// siUnits are the decimal (SI) byte units: 1 kB = 1000 B, 1 MB = 10^6 B.
var siUnits = []string{"kB", "MB", "GB", "TB", "PB", "EB"}

// humanBytes renders n bytes in decimal units with one decimal: "512 B",
// "1.5 kB", "12.3 MB".
func humanBytes(n int64) string {
	if n < 0 {
		return "-" + humanBytes(-n)
	}
	if n < 1000 {
		return strconv.FormatInt(n, 10) + " B"
	}
	return humanFloat(float64(n))
}

// humanRate renders a byte rate: "850 B/s", "1.2 MB/s".
func humanRate(bytesPerSec float64) string {
	if bytesPerSec < 999.5 {
		return fmt.Sprintf("%.0f B/s", bytesPerSec)
	}
	return humanFloat(bytesPerSec) + "/s"
}

func humanFloat(f float64) string {
	i := -1
	// 999.95 would print as "1000.0" in the smaller unit; move up instead.
	for f >= 999.95 && i < len(siUnits)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", f, siUnits[i])
}

// thousands renders n with comma thousands separators: 1234567 -> "1,234,567".
func thousands(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// shortDuration renders d to the second, compactly: "<1s", "42s", "3m05s",
// "1h02m".
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	if d < time.Second {
		if d == 0 {
			return "0s"
		}
		return "<1s"
	}
	d = d.Round(time.Second)
	h := int64(d / time.Hour)
	m := int64(d % time.Hour / time.Minute)
	s := int64(d % time.Minute / time.Second)
	switch {
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%02ds", m, s)
	default:
		return fmt.Sprintf("%ds", s)
	}
}

// wrap breaks text into lines of at most width columns at spaces; words
// longer than width are split. Existing newlines are kept.
func wrap(text string, width int) []string {
	if width < 10 {
		width = 10
	}
	var out []string
	for _, para := range strings.Split(text, "\n") {
		line := ""
		for _, w := range strings.Fields(para) {
			for len([]rune(w)) > width {
				if line != "" {
					out = append(out, line)
					line = ""
				}
				r := []rune(w)
				out = append(out, string(r[:width]))
				w = string(r[width:])
			}
			switch {
			case line == "":
				line = w
			case len([]rune(line))+1+len([]rune(w)) <= width:
				line += " " + w
			default:
				out = append(out, line)
				line = w
			}
		}
		out = append(out, line)
	}
	return out
}
