module github.com/flamingochat/flamingo/tests/release

go 1.25.0

// golang.org/x/mod v0.41.0 and later need Go 1.26; the repository supports Go 1.25.
require (
	github.com/stretchr/testify v1.12.1
	golang.org/x/mod v0.40.0
)

require go.yaml.in/yaml/v3 v3.0.5 // indirect
