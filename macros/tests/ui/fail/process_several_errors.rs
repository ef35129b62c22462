use foldline::ProcessManager;

#[derive(Default, ProcessManager)]
#[foldline(name = transfer, id = String, id = u64, snapshot(every = 10))]
#[foldline(name = "2nd")]
struct Transfer<T> {
    #[foldline(id)]
    id: T,
}

fn main() {}
