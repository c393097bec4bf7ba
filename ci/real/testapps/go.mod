module kimage.test/testapps

go 1.24
