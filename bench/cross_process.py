NAME="cross_process"
