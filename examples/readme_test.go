package examples

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	_ "github.com/etcdlb/etcdlb/balancer" // the policies the configs name
)

// TestReadmeSnippetsAreExcerpts keeps README.md's Go snippets honest: each
// names its source file on its first line, and each run of lines between
// "// ..." lines is in that file, whole and in order (indentation aside).
// The sources compile (go build ./examples/..., go vet ./...), so the
// snippets show code that does.
func TestReadmeSnippetsAreExcerpts(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) == 0 {
		t.Fatal("no Go snippet in README.md")
	}
	for i, b := range blocks {
		lines := strings.Split(strings.TrimSuffix(b[1], "\n"), "\n")
		src, ok := strings.CutPrefix(lines[0], "// ")
		if !ok || !strings.HasSuffix(src, ".go") {
			t.Errorf("snippet %d: first line %q, want the source file, as // examples/server/main.go", i+1, lines[0])
			continue
		}
		code, err := os.ReadFile(filepath.Join("..", src))
		if err != nil {
			t.Errorf("snippet %d: %v", i+1, err)
			continue
		}
		if missing := excerpt(trimmed(strings.Split(string(code), "\n")), lines[1:]); missing != "" {
			t.Errorf("snippet %d, from %s: not in the file as shown, from the line %q", i+1, src, missing)
		}
	}
}

// excerpt returns "" when the runs of snippet between elision lines ("//
// ...", a line that starts with it) appear in file, each whole and in order;
// else the first line of the run that does not.
func excerpt(file, snippet []string) string {
	at := 0
	for _, run := range runs(trimmed(snippet)) {
		i := index(file[at:], run)
		if i < 0 {
			return run[0]
		}
		at += i + len(run)
	}
	return ""
}

func runs(lines []string) [][]string {
	var out [][]string
	var cur []string
	for _, l := range lines {
		if strings.HasPrefix(l, "// ...") {
			if len(cur) > 0 {
				out = append(out, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// index returns where run starts in lines, or -1.
func index(lines, run []string) int {
	for i := 0; i+len(run) <= len(lines); i++ {
		match := true
		for j := range run {
			if lines[i+j] != run[j] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

func trimmed(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimSpace(l)
	}
	return out
}

// TestReadmeServiceConfigsParse checks that grpc accepts every service
// config README.md shows, in a json block or inline: a config grpc rejects
// fails the dial, and a README that shows one misleads its reader.
func TestReadmeServiceConfigsParse(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var configs []string
	for _, b := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		configs = append(configs, b[1])
	}
	prose := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(readme), "")
	for _, m := range regexp.MustCompile("`(\\{\"loadBalancing(?:Config|Policy)\".*?\\})`").FindAllStringSubmatch(prose, -1) {
		configs = append(configs, m[1])
	}
	if len(configs) < 2 {
		t.Fatalf("found %d service configs in README.md, want the retry example and the inline ones", len(configs))
	}
	for _, sc := range configs {
		conn, err := grpc.NewClient("passthrough:///127.0.0.1:1",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(sc))
		if err != nil {
			t.Errorf("README service config rejected by grpc: %v\n%s", err, sc)
			continue
		}
		conn.Close()
	}
}
