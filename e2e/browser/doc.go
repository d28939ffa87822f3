// Package browser holds end-to-end tests of the flamingo demo page in a real headless
// Chromium: two strangers open the page, pick what they are and whom they want to
// meet, chat, reload, and leave, the way people would.
//
// It is its own module so that the root module never depends on a browser driver. Run
// it from this folder with
//
//	go test ./...
//
// or from the repository root, through go.work, with
//
//	go test ./... ./e2e/browser/...
//
// The tests need the chromium binary (Debian package chromium): they look for
// $FLAMINGO_CHROMIUM, then chromium on $PATH. Without it they skip, or fail when
// $CI is "true". Screenshots of each screen go to testdata/out/.
package browser
