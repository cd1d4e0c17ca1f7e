// Package docs is the project's documentation, in Markdown. Its tests
// check the documentation against the repository: every make target it
// names exists, every file or folder it names or links to exists, and make
// help lists every documented target.
package docs
