package release

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	modzip "golang.org/x/mod/zip"
)

// These tests read the repository as committed at HEAD (through git archive), because
// that is what a tag would publish: uncommitted changes, staged or not, are not seen.
// Commit before running them, and run them with -count=1: go test reuses a cached pass
// while this folder is unchanged, and cannot see that HEAD has moved.

// TestOwnRequirementsAreReleases checks that whenever one of our modules requires
// another (a nested module requires the root, examples/cluster requires flamingoredis),
// it names a release version that a tag can give it, and that all of them name the same
// one. A replace does not reach the users of a module, so a placeholder such as
// v0.0.0-00010101000000-000000000000 would make the module impossible to fetch.
func TestOwnRequirementsAreReleases(t *testing.T) {
	repo := readHEAD(t)
	versions := repo.requiredVersions(t)
	assert.Contains(t, versions, repo.rootPath, "no nested module requires the root module")
}

// TestOwnRequirementsAreReplacedLocally checks that every requirement of one of our
// modules on another is replaced, in the same go.mod, by that module's folder in this
// repository: work here builds against the code beside it, with or without go.work,
// never against a downloaded release.
func TestOwnRequirementsAreReplacedLocally(t *testing.T) {
	repo := readHEAD(t)
	for _, m := range repo.sortedModules() {
		replaced := map[string]string{}
		for _, r := range m.file.Replace {
			if r.Old.Version == "" && r.New.Version == "" {
				replaced[r.Old.Path] = path.Clean(path.Join(m.dir, r.New.Path))
			}
		}
		for _, r := range m.file.Require {
			dep, ours := repo.modules[r.Mod.Path]
			if !ours {
				continue
			}
			assert.Equal(t, dep.dir, replaced[r.Mod.Path],
				"%s/go.mod: the requirement on %s is not replaced by its folder", m.dir, r.Mod.Path)
		}
	}
}

// TestOutsideModuleBuilds shows that a user outside this repository can fetch our
// modules once they are tagged, and build with them. It makes a file-based module
// proxy holding each of our modules at the version the go.mod files require (the
// version its tag will carry), zipped from HEAD as the go command zips a tagged
// commit. Then it writes a module of the kind a user writes, importing flamingo,
// flamingotest, flamingoredis and flamingoprom, and runs go mod tidy and go run in it with
// GOWORK=off, that proxy first, checksum-database lookups off and a module cache of
// its own, so that neither this repository nor a cached copy of an earlier run can
// stand in for the zips. Third-party modules come from the machine's module cache,
// else from the proxy `go env GOPROXY` names.
//
// It is slow the first time on a machine (a cold build of the outside module's
// dependencies, standard library included, with -trimpath), so -short skips it; CI runs
// it.
func TestOutsideModuleBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: builds an outside module from module zips; run without -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not installed:", err)
	}
	repo := readHEAD(t)
	versions := repo.requiredVersions(t)
	redisPath, promPath := repo.rootPath+"/flamingoredis", repo.rootPath+"/flamingoprom"
	require.Contains(t, versions, repo.rootPath, "no go.mod names a version of the root module")
	require.Contains(t, versions, redisPath, "no go.mod names a version of flamingoredis")
	require.Contains(t, versions, promPath, "no go.mod names a version of flamingoprom")

	proxy := t.TempDir()
	zips := map[string]string{}
	for modPath, version := range versions {
		zips[modPath] = repo.addToProxy(t, proxy, module.Version{Path: modPath, Version: version})
	}

	// The environment of a user's machine: nothing of this repository's, a module cache
	// of its own, and our proxy in front of the usual sources.
	shared := strings.Split(strings.TrimSuffix(run(t, "", nil, goBin, "env", "GOPATH", "GOCACHE", "GOMODCACHE", "GOPROXY"), "\n"), "\n")
	require.Len(t, shared, 4, "go env GOPATH GOCACHE GOMODCACHE GOPROXY")
	gopath, gocache, gomodcache, goproxy := shared[0], shared[1], shared[2], shared[3]
	proxies := []string{fileURL(proxy), fileURL(filepath.Join(gomodcache, "cache", "download"))}
	if goproxy != "" {
		proxies = append(proxies, goproxy)
	}
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		key, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(key, "GO")
	})
	env = append(env,
		"GOENV=off", // no settings from `go env -w`, such as a GOPRIVATE that covers us
		"GOWORK=off",
		"GOTOOLCHAIN=local",
		"GOPATH="+gopath,
		"GOCACHE="+gocache,
		"GOMODCACHE="+t.TempDir(),
		"GOPROXY="+strings.Join(proxies, ","),
		"GOSUMDB=off",
		"GONOSUMDB="+repo.rootPath,
		// -modcacherw lets t.TempDir remove the module cache; -trimpath keeps the build
		// cache keys free of that cache's random folder, so later runs reuse the build.
		"GOFLAGS=-mod=mod -modcacherw -trimpath",
	)

	outside := t.TempDir()
	mainGo, err := os.ReadFile(filepath.Join("testdata", "outside", "main.go"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(outside, "main.go"), mainGo, 0o644))
	goMod := new(modfile.File)
	require.NoError(t, goMod.AddModuleStmt("example.com/outside"))
	require.NoError(t, goMod.AddGoStmt(repo.modules[repo.rootPath].file.Go.Version))
	require.NoError(t, goMod.AddRequire(repo.rootPath, versions[repo.rootPath]))
	require.NoError(t, goMod.AddRequire(redisPath, versions[redisPath]))
	require.NoError(t, goMod.AddRequire(promPath, versions[promPath]))
	goModData, err := goMod.Format()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(outside, "go.mod"), goModData, 0o644))

	run(t, outside, env, goBin, "mod", "tidy")
	out := run(t, outside, env, goBin, "run", ".")
	assert.Equal(t, `a: ready, resumed=false
b: ready, resumed=false
a: queue_joined
a: matched with a male stranger
b: matched with a female stranger
b: received "hello from outside"
b: chat ended, partner_left
flamingo_matches_total 1
flamingo_messages_total 1
engine shut down
`, out)

	// The modules it was built with are the zips made above, byte for byte.
	goSum, err := os.ReadFile(filepath.Join(outside, "go.sum"))
	require.NoError(t, err)
	for modPath, zipFile := range zips {
		hash, err := dirhash.HashZip(zipFile, dirhash.Hash1)
		require.NoError(t, err)
		assert.Contains(t, string(goSum), modPath+" "+versions[modPath]+" "+hash+"\n")
	}
}

// repository is this repository's tree at HEAD, unpacked in a temporary folder.
type repository struct {
	tree     string    // the unpacked tree
	when     time.Time // the commit time of HEAD
	rootPath string    // the root module's path
	modules  map[string]goModule
}

// goModule is one module in the tree.
type goModule struct {
	dir  string // slash-separated, relative to the tree; "." for the root
	data []byte // its go.mod
	file *modfile.File
}

// readHEAD unpacks the repository at HEAD and finds its modules. It skips the test if
// git is not installed.
func readHEAD(t *testing.T) *repository {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git is not installed:", err)
	}
	top := strings.TrimSpace(run(t, "", nil, git, "rev-parse", "--show-toplevel"))
	when, err := time.Parse(time.RFC3339, strings.TrimSpace(run(t, top, nil, git, "log", "-1", "--format=%cI", "HEAD")))
	require.NoError(t, err)
	// The same archive the go command reads from a tagged commit: the committed files,
	// line endings as committed, export-ignore attributes applied.
	archive := run(t, top, nil, git, "-c", "core.autocrlf=input", "-c", "core.eol=lf", "archive", "--format=zip", "HEAD")
	repo := &repository{tree: t.TempDir(), when: when.UTC(), modules: map[string]goModule{}}
	unzip(t, []byte(archive), repo.tree)

	err = filepath.WalkDir(repo.tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Folders the go command ignores.
			if name := d.Name(); p != repo.tree && (name == "testdata" || name == "vendor" ||
				strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() != "go.mod" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		file, err := modfile.Parse(p, data, nil)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repo.tree, filepath.Dir(p))
		if err != nil {
			return err
		}
		repo.modules[file.Module.Mod.Path] = goModule{dir: filepath.ToSlash(rel), data: data, file: file}
		return nil
	})
	require.NoError(t, err)
	for modPath, m := range repo.modules {
		if m.dir == "." {
			repo.rootPath = modPath
		}
	}
	require.NotEmpty(t, repo.rootPath, "no go.mod at the root of the repository")
	for modPath, m := range repo.modules {
		require.True(t, modPath == repo.rootPath || strings.HasPrefix(modPath, repo.rootPath+"/"),
			"%s/go.mod: module %s is not under %s", m.dir, modPath, repo.rootPath)
	}
	return repo
}

func (r *repository) sortedModules() []goModule {
	var mods []goModule
	for _, m := range r.modules {
		mods = append(mods, m)
	}
	slices.SortFunc(mods, func(a, b goModule) int { return strings.Compare(a.dir, b.dir) })
	return mods
}

// requiredVersions returns the version at which each of our modules is required by
// the others, checking that it is a release version (no pre-release or pseudo-version)
// valid for the module's path, and the same in every go.mod.
func (r *repository) requiredVersions(t *testing.T) map[string]string {
	t.Helper()
	versions := map[string]string{}
	where := map[string]string{}
	for _, m := range r.sortedModules() {
		for _, req := range m.file.Require {
			modPath, v := req.Mod.Path, req.Mod.Version
			if _, ours := r.modules[modPath]; !ours {
				continue
			}
			at := m.dir + "/go.mod"
			if !assert.True(t, semver.Canonical(v) == v && semver.Prerelease(v) == "" && semver.Build(v) == "",
				"%s: requires %s %s, which is not a release version", at, modPath, v) {
				continue
			}
			if !assert.NoError(t, module.Check(modPath, v), at) {
				continue
			}
			if prev, ok := versions[modPath]; ok {
				assert.Equal(t, prev, v, "%s and %s require different versions of %s", where[modPath], at, modPath)
				continue
			}
			versions[modPath], where[modPath] = v, at
		}
	}
	return versions
}

// addToProxy writes m, zipped from its folder in the tree, into the file-based module
// proxy rooted at proxy, with the files the GOPROXY protocol asks for: @v/list,
// @v/<version>.info, .mod and .zip. It returns the path of the zip.
func (r *repository) addToProxy(t *testing.T, proxy string, m module.Version) string {
	t.Helper()
	src := r.modules[m.Path]
	dir := filepath.Join(r.tree, filepath.FromSlash(src.dir))
	if src.dir != "." {
		// The go command puts the repository's root LICENSE into the zip of a module in
		// a subfolder that has none of its own; pkg.go.dev needs it to show the docs.
		if _, err := os.Stat(filepath.Join(dir, "LICENSE")); os.IsNotExist(err) {
			if license, err := os.ReadFile(filepath.Join(r.tree, "LICENSE")); err == nil {
				require.NoError(t, os.WriteFile(filepath.Join(dir, "LICENSE"), license, 0o644))
			}
		}
	}

	escPath, err := module.EscapePath(m.Path)
	require.NoError(t, err)
	escVersion, err := module.EscapeVersion(m.Version)
	require.NoError(t, err)
	at := filepath.Join(proxy, filepath.FromSlash(escPath), "@v")
	require.NoError(t, os.MkdirAll(at, 0o755))
	info, err := json.Marshal(struct {
		Version string
		Time    time.Time
	}{m.Version, r.when})
	require.NoError(t, err)
	zipFile := filepath.Join(at, escVersion+".zip")
	for name, data := range map[string][]byte{
		"list":               []byte(m.Version + "\n"),
		escVersion + ".info": info,
		escVersion + ".mod":  src.data,
	} {
		require.NoError(t, os.WriteFile(filepath.Join(at, name), data, 0o644))
	}
	f, err := os.Create(zipFile)
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, modzip.CreateFromDir(f, m, dir), "zipping %s", m)
	require.NoError(t, f.Close())

	checked, err := modzip.CheckZip(m, zipFile)
	require.NoError(t, err, "checking the zip of %s", m)
	assert.Contains(t, checked.Valid, m.String()+"/LICENSE", "the zip of %s has no LICENSE", m)
	return zipFile
}

// unzip extracts the regular files of a zip archive into dir.
func unzip(t *testing.T, archive []byte, dir string) {
	t.Helper()
	z, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	require.NoError(t, err)
	for _, zf := range z.File {
		if !zf.Mode().IsRegular() {
			continue // folders are made below; links the go command leaves out of zips too
		}
		require.True(t, filepath.IsLocal(zf.Name), "archive entry %q", zf.Name)
		dst := filepath.Join(dir, filepath.FromSlash(zf.Name))
		require.NoError(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		rc, err := zf.Open()
		require.NoError(t, err)
		data, err := io.ReadAll(rc)
		rc.Close()
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(dst, data, 0o644))
	}
}

// run runs a command in dir (the test's folder if empty) with env (the test's
// environment if nil) and returns its standard output, failing the test, with its
// standard error, if it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), name, args...)
	cmd.Dir, cmd.Env = dir, env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "%s %s\n%s", filepath.Base(name), strings.Join(args, " "), stderr.String())
	return stdout.String()
}

// fileURL returns the file:// URL of the folder dir, as GOPROXY takes it.
func fileURL(dir string) string {
	p := filepath.ToSlash(dir)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p // a Windows drive letter
	}
	return (&url.URL{Scheme: "file", Path: p}).String()
}
