/* PLACEHOLDER: the robustness test is being written. */
#include "test_util.h"

int main(void)
{
    return tu_finish("robustness");
}
