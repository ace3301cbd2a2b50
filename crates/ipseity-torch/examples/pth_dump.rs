//! Lists the tensors of a `torch.save` state_dict (zip or legacy): `pth_dump FILE`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: pth_dump FILE")?;
    let sd = ipseity_torch::read_state_dict(&std::fs::read(path)?)?;
    for (name, t) in &sd.entries {
        println!("{name} {:?}", t.shape);
    }
    Ok(())
}
