using Osprey.Runtime;

System.Console.WriteLine($"Osprey {TorchRuntime.OspreyVersion}, TorchSharp {TorchRuntime.TorchSharpVersion}, libtorch {TorchRuntime.LibTorchVersion}");
