/* PLACEHOLDER: filled in with the ops of this family. */
#include "test_util.h"

int main(void)
{
    return tu_finish("ops_math");
}
