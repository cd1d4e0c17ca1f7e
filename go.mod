module whoami

go 1.26
