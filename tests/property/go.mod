module github.com/flamingochat/flamingo/tests/property

go 1.25

replace github.com/flamingochat/flamingo => ../..

require (
	github.com/stretchr/testify v1.12.1 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	pgregory.net/rapid v1.3.0 // indirect
)
