/* main.c - entry point of the `postdoc` binary; see cli.c. */
#include "cli.h"

int
main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
