#include <iostream>
int main() { std::cout << "qhost " << QTOOL_VERSION << "\n"; return 0; }
