# The two README commands, plus a few for developers. All of them install what
# is missing first (see scripts/dev.sh).
.PHONY: run test watch bench soak setup

run:
	scripts/dev.sh run

test:
	scripts/dev.sh test

watch:
	scripts/dev.sh watch

setup:
	scripts/dev.sh setup

bench:
	scripts/dev.sh bench

soak:
	scripts/dev.sh soak
