namespace Osprey.Models.Building;

/// <summary>
/// A model family (YOLOv8, YOLO11, YOLOv10, …): registers the YAML module names its configs use, each with the
/// factory that builds the block (Ultralytics' parse_model branch for it). A new family is one class (plus its blocks)
/// and one line in <see cref="ModuleRegistry.KnownFamilies"/>; a family outside the library is added with
/// <see cref="ModuleRegistry.With"/>.
/// </summary>
public interface IModelFamily
{
    /// <summary>Registers the family's modules (<see cref="ModuleRegistry.Register"/>).</summary>
    void Register(ModuleRegistry registry);
}
